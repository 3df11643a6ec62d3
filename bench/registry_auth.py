#!/usr/bin/env python3
"""The Authorization value a registry wants for GET URL, found the way clients find it.

Usage: registry_auth.py URL USER PASSWORD  (prints the value, or nothing if none is needed)

GET without credentials; on a 401 Bearer challenge, a token from the challenge's realm with
Basic credentials, for the challenge's service and scope (the Docker token flow regbench
also follows). A token rather than Basic on every request: the timed requests then cost what
a real client's cost, never a password hash each.
"""
import base64
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


def authorization(url, user, password):
    try:
        urllib.request.urlopen(url).close()
        return None
    except urllib.error.HTTPError as e:
        # Any answer but 401 (a 404 for want of an Accept header, say) asks for no credentials.
        if e.code != 401:
            return None
        challenge = e.headers.get("WWW-Authenticate", "")
    basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    scheme, _, rest = challenge.partition(" ")
    if scheme.lower() != "bearer":
        return basic
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    query = urllib.parse.urlencode({k: params[k] for k in ("service", "scope") if k in params})
    request = urllib.request.Request(f"{params['realm']}?{query}", headers={"Authorization": basic})
    with urllib.request.urlopen(request) as r:
        body = json.load(r)
    return "Bearer " + (body.get("token") or body["access_token"])


if __name__ == "__main__":
    value = authorization(*sys.argv[1:4])
    if value:
        print(value)
