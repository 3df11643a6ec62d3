#!/usr/bin/env python3
"""oras-py with its token backend (OrasClient's default) against a running Bulwark registry.

Usage: oras_token.py HOST:PORT WORKDIR USERNAME PASSWORD REPOSITORY

One client logged in as USERNAME pushes two files as REPOSITORY:v1 with a bearer token; a
second client, logged in the same way, pulls them back through the automatic token flow
(401 challenge, token from the challenge's realm with Basic credentials, retry) and every
file must come back byte for byte. Any failed check raises, so the exit status is non-zero.
On success prints one JSON object for the Rust side: the pushed manifest's digest and the
claims of the token each client held.
"""

import base64
import filecmp
import json
import os
import sys

import oras.auth
import oras.auth.utils
import oras.client


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def logged_in(host: str, username: str, password: str, work: str) -> oras.client.OrasClient:
    client = oras.client.OrasClient(hostname=host, insecure=True)
    assert isinstance(client.auth, oras.auth.TokenAuth), type(client.auth)
    # Without a docker module, login only records the credentials, in this config file
    # (never the user's own), and gives them to the token backend.
    client.login(
        username=username,
        password=password,
        hostname=host,
        config_path=os.path.join(work, "docker-config.json"),
    )
    return client


def main() -> None:
    host, work, username, password, repository = sys.argv[1:6]
    os.chdir(work)  # oras-py only pushes files below the working directory
    target = f"{host}/{repository}:v1"
    with open("notes.txt", "wb") as f:
        f.write(b"pushed by oras-py with a registry token\n")
    with open("data.bin", "wb") as f:
        f.write(os.urandom(100_000))

    pusher = logged_in(host, username, password, work)
    # oras-py keeps one token whatever its scope (oras-project/oras-py#187): on its own it
    # answers a push's first challenge (the HEAD of a blob, scope pull) and sends that
    # pull-only token again for the upload, which a registry that checks scopes refuses.
    # So the pusher first meets the challenge of an upload and asks the realm for that
    # scope with its own token request, as the automatic flow would.
    answer = pusher.session.post(f"http://{host}/v2/{repository}/blobs/uploads/")
    assert answer.status_code == 401, answer.status_code
    challenge = oras.auth.utils.parse_auth_header(answer.headers["Www-Authenticate"])
    assert challenge.scope == f"repository:{repository}:pull,push", challenge.scope
    token = pusher.auth.request_token(challenge)
    assert token, "the token endpoint issued no token"
    pusher.auth.set_token_auth(token)
    pushed = pusher.push(target=target, files=["notes.txt", "data.bin"], quiet=True)
    assert pushed.status_code == 201, (pushed.status_code, pushed.text)

    puller = logged_in(host, username, password, work)
    out = os.path.join(work, "pulled")
    files = puller.pull(target=target, outdir=out)
    assert sorted(os.path.basename(p) for p in files) == ["data.bin", "notes.txt"], files
    for name in ["notes.txt", "data.bin"]:
        assert filecmp.cmp(name, os.path.join(out, name), shallow=False), name
    assert puller.auth.token, "the puller holds no token: it never followed the token flow"

    print(
        json.dumps(
            {
                "digest": pushed.headers["Docker-Content-Digest"],
                "push_token": claims(token),
                "pull_token": claims(puller.auth.token),
            }
        )
    )


if __name__ == "__main__":
    main()
