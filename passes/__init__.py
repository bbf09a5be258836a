"""The pass server domain: web service, admin API, building, signing, pushing."""
