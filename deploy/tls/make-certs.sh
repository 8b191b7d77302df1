#!/usr/bin/env bash
# deploy/tls/make-certs.sh [DIR [NAME...]]
#
# Makes a private certificate authority and, signed by it, a server certificate for the
# orchestrator (valid for each NAME, plus localhost and 127.0.0.1) and a client
# certificate for runners (for `require_runner_certificate`), as PEM files in DIR
# (default: deploy/tls):
#   ca.pem, ca-key.pem           the CA: give ca.pem to clients and runners, keep ca-key.pem offline
#   server.pem, server-key.pem   the orchestrator's [tls] cert_file and key_file
#   runner.pem, runner-key.pem   a runner's [tls] cert_file and key_file
# NAMEs default to `orchestrator rivet-orchestrator` (the compose and Kubernetes service
# names). Existing files are kept: delete them to make new ones. Needs openssl.
#
# This is for trying Rivet and for small installations; an organisation with its own PKI
# (or cert-manager on Kubernetes) should issue the certificates there instead.
set -euo pipefail

dir=${1:-deploy/tls}
shift || true
names=("$@")
((${#names[@]} > 0)) || names=(orchestrator rivet-orchestrator)
command -v openssl >/dev/null || { echo "make-certs: openssl is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

if [[ ! -f ca.pem ]]; then
  key ca-key.pem
  openssl req -x509 -new -key ca-key.pem -days 825 -subj "/CN=Rivet CA" -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
fi

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the CA.
sign() {
  local name=$1 subject=$2 extensions=$3
  [[ -f $name.pem ]] && return 0
  key "$name-key.pem"
  openssl req -new -key "$name-key.pem" -subj "/CN=$subject" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
    -out "$name.pem" -extfile <(printf '%s\n' "$extensions") 2>/dev/null
  rm -f "$name.csr"
}

san="subjectAltName=$(printf 'DNS:%s,' "${names[@]}")DNS:localhost,IP:127.0.0.1"
sign server "${names[0]}" "$san
basicConstraints=critical,CA:FALSE
extendedKeyUsage=serverAuth"
sign runner "rivet-runner" "basicConstraints=critical,CA:FALSE
extendedKeyUsage=clientAuth"
# The orchestrator's container runs as an unprivileged user that must read its key
# through the bind mount (systemd hands it over with LoadCredential instead).
chmod 0644 server-key.pem
chmod 0600 runner-key.pem
chmod 0600 ca-key.pem
echo "make-certs: certificates in $(pwd) for ${names[*]}, localhost, 127.0.0.1"
