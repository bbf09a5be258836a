#!/usr/bin/env bash
# Start Debian's PgBouncer in transaction mode in front of the local PostgreSQL, the way
# Heroku's connection pooling runs: each transaction may land on another server connection
# (server_round_robin), and server connections are recycled every few seconds.
#   .ci/pgbouncer.sh start FOLDER PORT    .ci/pgbouncer.sh stop FOLDER
set -euo pipefail
action=$1 folder=$2

if [ "$action" = stop ]; then
    [ -f "$folder/pgbouncer.pid" ] && kill "$(cat "$folder/pgbouncer.pid")" 2>/dev/null || true
    exit 0
fi

port=$3
mkdir -p "$folder"
chmod 0777 "$folder"  # PgBouncer drops root for the postgres user and writes its pid here
echo '"postgres" ""' >"$folder/userlist.txt"
cat >"$folder/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $folder/userlist.txt
pool_mode = transaction
server_round_robin = 1
server_lifetime = 5
server_idle_timeout = 5
default_pool_size = 20
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits,options
pidfile = $folder/pgbouncer.pid
logfile = $folder/pgbouncer.log
INI
chmod 0644 "$folder"/*
pgbouncer -d -u postgres "$folder/pgbouncer.ini"
for _ in $(seq 1 50); do
    pg_isready -h 127.0.0.1 -p "$port" -q && exit 0
    sleep 0.1
done
echo "PgBouncer did not start; its log:" >&2
cat "$folder/pgbouncer.log" >&2
exit 1
