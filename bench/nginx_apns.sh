#!/usr/bin/env bash
# A fast local stand-in for api.push.apple.com, for bench/push_sender.py: nginx answering
# every POST /3/device/<token> with 200 over HTTP/2 + TLS, demanding a client certificate.
# One worker, pinned to one CPU, so the sender can have another CPU to itself.
#
#   bench/nginx_apns.sh start DIR PORT SERVER_CERT SERVER_KEY CLIENT_CA
#   bench/nginx_apns.sh stop DIR
#
# Certificates come from the caller (the fake Apple chain); this script only writes
# DIR/nginx.conf. NGINX_CPU (default 1) picks the CPU; installs nginx-light when missing.
set -euo pipefail

usage() {
    sed -n '6,7p' "$0" | sed 's/^# *//' >&2
    exit 2
}

install_nginx() {
    command -v nginx >/dev/null && return
    echo "nginx missing: installing nginx-light from Debian packages" >&2
    apt-get update -qq
    if apt-cache policy nginx-light | grep -q 'Candidate: [0-9]'; then
        apt-get install -y -qq nginx-light >&2
    else
        apt-get install -y -qq nginx >&2
    fi
}

# "listen ... http2" became "http2 on;" in nginx 1.25.1.
http2_syntax() {
    local version
    version=$(nginx -v 2>&1 | sed 's|.*nginx/||')
    if printf '%s\n1.25.0\n' "$version" | sort -V -C; then
        echo old
    else
        echo new
    fi
}

start() {
    local dir=$1 port=$2 cert=$3 key=$4 client_ca=$5
    install_nginx
    mkdir -p "$dir/tmp"
    dir=$(cd "$dir" && pwd)
    local cpu=${NGINX_CPU:-1}
    local affinity=""
    if ((cpu < $(nproc))); then
        # worker_cpu_affinity takes a bit mask, lowest CPU rightmost.
        affinity="worker_cpu_affinity 1$(printf '0%.0s' $(seq 1 "$cpu"));"
    fi
    local listen="listen 127.0.0.1:$port ssl;" http2="http2 on;"
    if [[ $(http2_syntax) == old ]]; then
        listen="listen 127.0.0.1:$port ssl http2;"
        http2=""
    fi
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
$affinity
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    # Like APNs: long-lived connections, many streams each.
    keepalive_requests 100000000;
    keepalive_timeout 600s;
    http2_max_concurrent_streams 1000;
    server {
        $listen
        $http2
        ssl_certificate $cert;
        ssl_certificate_key $key;
        ssl_client_certificate $client_ca;
        ssl_verify_client on;
        ssl_verify_depth 3;
        location /3/device/ { return 200; }
        location / { return 404; }
    }
}
EOF
    nginx -p "$dir" -c "$dir/nginx.conf"
    echo "nginx listening on https://127.0.0.1:$port (config $dir/nginx.conf)" >&2
}

stop() {
    local pidfile=$1/nginx.pid
    if [[ ! -f $pidfile ]]; then
        echo "no nginx running from $1" >&2
        return 0
    fi
    local pid
    pid=$(<"$pidfile")
    kill -TERM "$pid" # fast shutdown of the master and its worker
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.1 # polling for the master to exit, with a deadline
    done
}

case ${1:-} in
start) (($# == 6)) || usage; start "$2" "$3" "$4" "$5" "$6" ;;
stop) (($# == 2)) || usage; stop "$2" ;;
*) usage ;;
esac
