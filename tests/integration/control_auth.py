"""Tokens: attacks on access tokens (alg none, HS256 signed with the public key as the secret,
another HMAC algorithm, expired, not yet valid, wrong audience or issuer, tampered payload and
signature, missing claims) with HS256 and with ES256 keys; OpenID Connect sign-in with RS256
and ES256 ID tokens from a JWKS file (iss, aud, exp, email_verified, kid, alg pinned), and
accounts created or linked by verified e-mail. Keys are made here and never kept."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
import mltest  # noqa: E402
from mltest import Tap  # noqa: E402
from mlcontrol import (ControlDaemon, Postgres, access_claims, b64url, jwt_claims, jwt_hs256,  # noqa: E402
                       migrate)

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402

t = Tap()
tmp = mltest.scratch_dir("mlauth-")
ISS, AUD = "https://issuer.test", "client-123"


def sign_rs256(key, header, claims):
    si = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = key.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256())
    return si + "." + b64url(sig)


def sign_es256(key, header, claims):
    si = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(si.encode(), ec.ECDSA(hashes.SHA256())))
    return si + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def jwk_rsa(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64url(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
            "e": b64url(n.e.to_bytes(3, "big"))}


def jwk_ec(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "EC", "kid": kid, "crv": "P-256", "use": "sig",
            "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}


def tamper_payload(tok, **changes):
    h, p, s = tok.split(".")
    c = jwt_claims(tok)
    c.update(changes)
    return h + "." + b64url(json.dumps(c).encode()) + "." + s


def tamper_sig(tok):
    h, p, s = tok.split(".")
    return h + "." + p + "." + (("A" if s[0] != "A" else "B") + s[1:])


rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ec_key = ec.generate_private_key(ec.SECP256R1())
other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
jwks = os.path.join(tmp, "jwks.json")
with open(jwks, "w") as f:
    json.dump({"keys": [jwk_rsa(rsa_key, "rsa-1"), jwk_ec(ec_key, "ec-1"),
                        {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"}]}, f)
es_key_file = os.path.join(tmp, "jwt-es256.pem")
jwt_ec = ec.generate_private_key(ec.SECP256R1())
with open(es_key_file, "wb") as f:
    f.write(jwt_ec.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))

pg = Postgres()
d = d2 = None
try:
    r = migrate(pg.url)
    t.ok(r.returncode == 0, "schema migrated", r.stderr)
    d = ControlDaemon(pg.url, ["auth.oidc-issuer=" + ISS, "auth.oidc-audience=" + AUD,
                               "auth.oidc-jwks-file=" + jwks, "auth.leeway=30s"])
    api = d.api
    tok, uid = api.user("victim@example.org", name="Victim")
    t.ok(api.get("/api/v1/me", tok).status == 200, "a genuine token works")

    # ------------------------------------------------------------ HS256 access tokens
    now = int(time.time())
    cases = [
        ("alg none", jwt_hs256(access_claims(uid), header={"alg": "none", "typ": "JWT"}).rsplit(".", 1)[0] + ".", "invalid_token"),
        ("alg none with a signature", jwt_hs256(access_claims(uid), header={"alg": "none", "typ": "JWT"}), "invalid_token"),
        ("HS512 with the right secret (alg not pinned)", None, "invalid_token"),
        ("signed with another secret", jwt_hs256(access_claims(uid), secret="x" * 40), "invalid_token"),
        ("expired beyond the leeway", jwt_hs256(access_claims(uid, iat=now - 7200, nbf=now - 7200, exp=now - 60)), "token_expired"),
        ("not yet valid (nbf)", jwt_hs256(access_claims(uid, nbf=now + 600)), "invalid_token"),
        ("issued in the future (iat)", jwt_hs256(access_claims(uid, iat=now + 600)), "invalid_token"),
        ("wrong audience", jwt_hs256(access_claims(uid, aud="another-api")), "invalid_token"),
        ("audience list without ours", jwt_hs256(access_claims(uid, aud=["a", "b"])), "invalid_token"),
        ("wrong issuer", jwt_hs256(access_claims(uid, iss="https://evil.test")), "invalid_token"),
        ("no exp", jwt_hs256({k: v for k, v in access_claims(uid).items() if k != "exp"}), "invalid_token"),
        ("exp as a string", jwt_hs256(access_claims(uid, exp=str(now + 3600))), "invalid_token"),
        ("sub not a user id", jwt_hs256(access_claims("admin")), "invalid_token"),
        ("tampered payload (another sub)", tamper_payload(tok, sub="00000000-0000-0000-0000-000000000001"), "invalid_token"),
        ("tampered payload (exp extended)", tamper_payload(tok, exp=now + 10 ** 6), "invalid_token"),
        ("tampered signature", tamper_sig(tok), "invalid_token"),
        ("no signature", tok.rsplit(".", 1)[0] + ".", "invalid_token"),
        ("two segments", ".".join(tok.split(".")[:2]), "invalid_token"),
    ]
    import hashlib
    import hmac as hm
    hdr = b64url(json.dumps({"alg": "HS512", "typ": "JWT"}).encode())
    pl = b64url(json.dumps(access_claims(uid)).encode())
    from mlcontrol import JWT_SECRET
    hs512 = hdr + "." + pl + "." + b64url(hm.new(JWT_SECRET.encode(), (hdr + "." + pl).encode(), hashlib.sha512).digest())
    cases[2] = (cases[2][0], hs512, "invalid_token")
    for desc, bad, code in cases:
        r = api.get("/api/v1/me", bad)
        t.ok(r.status == 401 and r.code() == code, "access token attack refused: %s" % desc, r)
    r = api.get("/api/v1/me", jwt_hs256(access_claims(uid, exp=now - 10)))
    t.ok(r.status == 200, "a token expired 10 s ago passes within the 30 s leeway", r)
    r = api.get("/api/v1/me", jwt_hs256(access_claims(uid, aud=["x", "meetlite-api"])))
    t.ok(r.status == 200, "an audience list containing ours passes", r)

    # ------------------------------------------------------------ OIDC
    def idt(key="rsa", **over):
        c = {"iss": ISS, "aud": AUD, "sub": "sub-1", "email": "new@example.org", "email_verified": True,
             "name": "New Person", "iat": int(time.time()), "exp": int(time.time()) + 600}
        c.update(over)
        if key == "rsa":
            return sign_rs256(rsa_key, {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}, c)
        return sign_es256(ec_key, {"alg": "ES256", "kid": "ec-1", "typ": "JWT"}, c)

    def oidc(token):
        return api.post("/api/v1/auth/oidc", {"id_token": token})

    r = oidc(idt())
    t.ok(r.status == 201 and r.json["user"]["email"] == "new@example.org" and
         r.json["user"]["signup_method"] == "oidc" and r.json["token"], "OIDC RS256: a new account (201)", r)
    new_id = r.json["user"]["id"]
    t.ok(api.get("/api/v1/me", r.json["token"]).json["oidc_issuer"] == ISS, "the account carries the issuer")
    r = oidc(idt())
    t.ok(r.status == 200 and r.json["user"]["id"] == new_id, "OIDC again: the same account (200)", r)
    r = oidc(idt(key="ec", sub="sub-2", email="ec@example.org"))
    t.ok(r.status == 201, "OIDC ES256: a new account", r)
    r = oidc(idt(sub="sub-victim", email="VICTIM@example.org"))
    t.ok(r.status == 200 and r.json["user"]["id"] == uid, "a verified e-mail links the existing password account", r)
    t.eq(pg.psql("SELECT oidc_subject FROM users WHERE id = '%s'" % uid), "sub-victim", "the link is recorded")
    # whoever set the password never proved they own the address: the link takes the account over
    r = api.post("/api/v1/auth/login", {"email": "victim@example.org", "password": "correct horse"})
    t.eq(r.status, 401, "after the link the password set by the first signer no longer logs in")
    t.eq(pg.psql("SELECT signup_method || ' ' || (password_hash IS NULL) FROM users WHERE id = '%s'" % uid),
         "oidc true", "the account became an OIDC account without a password")
    t.ok("password_cleared" in pg.psql("SELECT detail::text FROM audit_log WHERE action = 'user.oidc-link' "
                                       "AND actor_id = '%s'" % uid), "the audit log says the password was cleared")
    r = oidc(idt(sub="sub-other", email="victim@example.org"))
    t.ok(r.status == 409 and r.code() == "account_conflict",
         "a second identity for an already linked address: 409", r)
    oidc_cases = [
        ("wrong audience", idt(aud="other-client")),
        ("wrong issuer", idt(iss="https://evil.test")),
        ("expired", idt(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)),
        ("alg none", idt().rsplit(".", 2)[0].replace(
            b64url(json.dumps({"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}).encode()),
            b64url(json.dumps({"alg": "none", "kid": "rsa-1", "typ": "JWT"}).encode())) + "." +
         idt().split(".")[1] + "."),
        ("HS256 signed with the RSA public key as the secret",
         jwt_hs256({"iss": ISS, "aud": AUD, "sub": "sub-x", "email": "x@example.org", "email_verified": True,
                    "exp": int(time.time()) + 600}, secret=pub_pem(rsa_key),
                   header={"alg": "HS256", "kid": "rsa-1", "typ": "JWT"})),
        ("RS256 header on the EC key id", sign_rs256(rsa_key, {"alg": "RS256", "kid": "ec-1", "typ": "JWT"},
                                                     jwt_claims(idt()))),
        ("signed by an unknown key", sign_rs256(other_rsa, {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"},
                                               jwt_claims(idt()))),
        ("unknown kid", sign_rs256(rsa_key, {"alg": "RS256", "kid": "nope", "typ": "JWT"}, jwt_claims(idt()))),
        ("tampered payload", tamper_payload(idt(), sub="sub-victim")),
        ("tampered signature", tamper_sig(idt())),
    ]
    for desc, bad in oidc_cases:
        r = oidc(bad)
        t.ok(r.status == 401 and r.code() in ("invalid_token", "token_expired"), "OIDC attack refused: %s" % desc, r)
    r = oidc(idt(sub="sub-3", email="unverified@example.org", email_verified=False))
    t.ok(r.status == 403 and r.code() == "email_not_verified", "email_verified false: 403", r)
    r = oidc(idt(sub="sub-4", email="noverify@example.org", email_verified=None))
    t.ok(r.status == 403, "email_verified absent: 403", r)
    r = api.post("/api/v1/auth/oidc", {"id_token": 5})
    t.ok(r.status == 422, "id_token of the wrong type: 422", r)
    t.ok(pg.psql("SELECT count(*) FROM users WHERE email IN ('x@example.org', 'unverified@example.org')") == "0",
         "no account was made by a refused token")
    t.ok(d.clean(), "meetlited (HS256, OIDC) exits cleanly", d.log()[-3000:])
    d.close()
    d = None

    # ------------------------------------------------------------ ES256 access tokens
    d2 = ControlDaemon(pg.url, ["auth.jwt-key=" + es_key_file])
    api = d2.api
    r = api.post("/api/v1/auth/login", {"email": "new2@example.org", "password": "x" * 9})
    r = api.signup("es@example.org", "long enough", "ES")
    t.ok(r.status == 201 and json.loads(__import__("mlcontrol").b64url_decode(r.json["token"].split(".")[0]))["alg"] == "ES256",
         "with auth.jwt-key, tokens are ES256", r)
    etok, eid = r.json["token"], r.json["user"]["id"]
    t.ok(api.get("/api/v1/me", etok).status == 200, "an ES256 token verifies with the public key")
    claims = access_claims(eid)
    for desc, bad in [
        ("HS256 signed with the public key as the secret", jwt_hs256(claims, secret=pub_pem(jwt_ec))),
        ("HS256 signed with the old shared secret", jwt_hs256(claims)),
        ("alg none", jwt_hs256(claims, header={"alg": "none"}).rsplit(".", 1)[0] + "."),
        ("ES256 by another key", sign_es256(ec_key, {"alg": "ES256", "typ": "JWT"}, claims)),
        ("expired", sign_es256(jwt_ec, {"alg": "ES256", "typ": "JWT"}, access_claims(eid, exp=int(time.time()) - 600))),
        ("wrong audience", sign_es256(jwt_ec, {"alg": "ES256", "typ": "JWT"}, access_claims(eid, aud="x"))),
        ("tampered payload", tamper_payload(etok, sub=uid)),
        ("tampered signature", tamper_sig(etok)),
    ]:
        r = api.get("/api/v1/me", bad)
        t.ok(r.status == 401, "ES256 mode refuses: %s" % desc, r)
    r = api.get("/api/v1/me", sign_es256(jwt_ec, {"alg": "ES256", "typ": "JWT"}, claims))
    t.ok(r.status == 200, "a token we sign ourselves with the key passes (control)", r)
finally:
    for x in (d, d2):
        if x:
            t.ok(x.clean(), "meetlited exits cleanly", x.log()[-3000:])
            x.close()
    pg.close()
    for f in os.listdir(tmp):
        os.unlink(os.path.join(tmp, f))
    os.rmdir(tmp)

sys.exit(t.done())
