"""
NAME
    tls_pki - a throw-away certificate authority for TLS tests

DESCRIPTION
    make_pki(d) writes, with openssl, into the existing directory d: a CA
    (ca.pem, ca.key), a certificate for localhost that it signed
    (server.pem, server.key, subjectAltName DNS:localhost) and, for
    tests of a certificate nobody trusts, an unrelated self-signed CA
    (other.pem, other.key). Keys are mode 0600. Valid for two days.
"""
import os
import subprocess


def make_pki(d, ca_name="Herald Test CA"):
    def sh(*args):
        subprocess.run(args, check=True, capture_output=True, cwd=d)
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-subj", "/CN=%s" % ca_name, "-keyout", "ca.key", "-out", "ca.pem")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
       "-keyout", "server.key", "-out", "server.csr")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
       "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem")
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
       "-subj", "/CN=Some Other CA", "-keyout", "other.key", "-out", "other.pem")
    for key in ("ca.key", "server.key", "other.key"):
        os.chmod(os.path.join(d, key), 0o600)
