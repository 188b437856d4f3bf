#!/bin/sh
# make-certs.sh DIR: the TLS tests' certificates, made at run time with
# OpenSSL (no key is ever committed). In DIR:
#   ca.pem ca.key          the test CA
#   server.pem server.key  a server certificate for DNS:mpt-test.example, by the CA
#   expired.pem            the same name and key, by the CA, valid only in 2020
#   other-ca.pem           another CA (what a client that trusts only it rejects)
#   mitm.pem mitm.key      a certificate for the same name by the other CA
#   client.pem client.key  a client certificate by the CA
# EC P-256 keys: quick to make and to use.
set -eu
d=$1
mkdir -p "$d"
cd "$d"
command -v openssl >/dev/null || { echo "make-certs.sh: openssl not found (apt-get install openssl)" >&2; exit 77; }
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # ca NAME CN
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() { # leaf NAME CA SAN
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=${3#DNS:}"
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -out "$1.pem" \
        -days 3 -extfile "$1.ext" 2>/dev/null
}
ca ca "libmpt test CA"
ca other-ca "libmpt other CA"
leaf server ca DNS:mpt-test.example
leaf client ca DNS:mpt-client.example
leaf mitm other-ca DNS:mpt-test.example
# Expired: OpenSSL 3.0's x509 cannot set past dates; `openssl ca` can.
mkdir -p cadb
: >cadb/index.txt
echo 1000 >cadb/serial
cat >cadb/ca.cnf <<CNF
[ca]
default_ca = d
[d]
database = cadb/index.txt
serial = cadb/serial
new_certs_dir = cadb
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
CNF
openssl ca -batch -notext -config cadb/ca.cnf -in server.csr -out expired.pem \
    -startdate 20200101000000Z -enddate 20200102000000Z -extfile server.ext 2>/dev/null
