#!/usr/bin/env bash
# nginx + ModSecurity v3 + OWASP CRS 3.3.4 at paranoia level 1, on 127.0.0.1:18080 only (Debian bookworm).
# Usage: bash benchmarks/corpus/modsec/setup.sh start|stop ; then
#        python benchmarks/detect_bench.py --modsec http://127.0.0.1:18080
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
run=/tmp/modsec
case "${1:-start}" in
start)
    command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_http_modsecurity_module.so ] \
        && [ -d /usr/share/modsecurity-crs ] \
        || apt-get install -y nginx libnginx-mod-http-modsecurity modsecurity-crs
    mkdir -p "$run"/{tmp,data,www,logs}
    chmod 777 "$run/tmp" "$run/data"
    echo ok >"$run/www/ok.txt"
    # Debian's recommended ModSecurity settings, with the engine on and audit/status logging off
    grep -v '^\s*#' /etc/nginx/modsecurity.conf | grep -v '^\s*$' | sed \
        -e 's/^SecRuleEngine DetectionOnly/SecRuleEngine On/' \
        -e 's|^SecAuditEngine RelevantOnly|SecAuditEngine Off|' \
        -e 's|^SecStatusEngine On|SecStatusEngine Off|' \
        -e 's|^SecUnicodeMapFile unicode.mapping|SecUnicodeMapFile /etc/nginx/unicode.mapping|' \
        -e "s|^SecAuditLog /var/log/nginx/modsec_audit.log|SecAuditLog $run/logs/audit.log|" \
        -e "s|^SecTmpDir /tmp/|SecTmpDir $run/tmp/|" -e "s|^SecDataDir /tmp/|SecDataDir $run/data/|" \
        >"$run/modsecurity.conf"
    cp "$here/main.conf" "$here/nginx.conf" "$run/"
    nginx -t -q -c "$run/nginx.conf" -p "$run"
    nginx -c "$run/nginx.conf" -p "$run"
    echo "nginx+ModSecurity+CRS listening on 127.0.0.1:18080 (pid $(cat "$run/nginx.pid"))"
    ;;
stop)
    [ -f "$run/nginx.pid" ] && kill "$(cat "$run/nginx.pid")" && echo stopped
    ;;
esac
