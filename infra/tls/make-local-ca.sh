#!/bin/sh
# Makes a throwaway certificate authority and one certificate for the NATS nodes, for testing
# TLS on a local or compose cluster. Not for production: use your own CA there.
#
#   infra/tls/make-local-ca.sh OUT_DIR [NAME...]
#
# Writes OUT_DIR/ca.pem, ca-key.pem, server.pem, server-key.pem (keys 0600). The certificate is
# valid for localhost, 127.0.0.1, and each NAME (default: nats-1 nats-2 nats-3; an IPv4 address is
# taken as one), as server and as client, so the nodes' routes can verify each other with it.
# Needs openssl.
set -eu

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -lt 1 ] && exit 2 || exit 0
fi
out=$1
shift
[ $# -gt 0 ] || set -- nats-1 nats-2 nats-3
command -v openssl >/dev/null || { echo "make-local-ca.sh: openssl is not installed" >&2; exit 1; }

mkdir -p "$out"
umask 077
san="DNS:localhost,IP:127.0.0.1"
for name in "$@"; do
  case $name in
    *[!0-9.]*) san="$san,DNS:$name" ;;
    *) san="$san,IP:$name" ;;
  esac
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=Perry Hub local test CA" -keyout "$out/ca-key.pem" -out "$out/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=perry-hub-nats" -keyout "$out/server-key.pem" -out "$out/server.csr" 2>/dev/null
printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' "$san" \
  >"$out/server.ext"
openssl x509 -req -in "$out/server.csr" -CA "$out/ca.pem" -CAkey "$out/ca-key.pem" -CAcreateserial \
  -days 30 -extfile "$out/server.ext" -out "$out/server.pem" 2>/dev/null
rm -f "$out/server.csr" "$out/server.ext" "$out/ca.srl"
chmod 644 "$out/ca.pem" "$out/server.pem"
echo "wrote $out/ca.pem, $out/server.pem and their keys (valid 30 days for: $san)"
