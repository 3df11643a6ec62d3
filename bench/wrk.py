#!/usr/bin/env python3
"""Cross-checks request rates with wrk and reports server CPU per request.

Usage: wrk.py LABEL=URL=PID=RESULTS_JSON [...] [--user USER --password PASSWORD]
For each server and each of the manifest_get / blob_head paths that regbench recorded, runs
`wrk -t1 -c64 -d15s` and reads the server's CPU time from /proc before and after. wrk cannot
parse bodiless HEAD responses that carry a Content-Length, so the blob is fetched with GET
(64 KiB per response): a heavier request than regbench's HEAD. A server that challenges is
sent a token for the path, as regbench is (registry_auth.py).
"""
import argparse
import json
import os
import re
import subprocess

from registry_auth import authorization

ACCEPT = ("application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,"
          "application/vnd.docker.distribution.manifest.v2+json")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url, pid, method, path, seconds, user, password):
    script = f"wrk.method = '{method}'\nwrk.headers['Accept'] = '{ACCEPT}'\n"
    auth = authorization(url + path, user, password)
    if auth:
        script += f"wrk.headers['Authorization'] = '{auth}'\n"
    lua = f"/tmp/wrk-{os.getpid()}.lua"
    with open(lua, "w") as f:
        f.write(script)
    before = cpu_seconds(pid)
    out = subprocess.run(["wrk", "-t1", "-c64", f"-d{seconds}s", "-s", lua, url + path],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "cpu_ms_per_req": round(cpu * 1000 / reqs, 4) if reqs else None,
            "errors": int(non2xx.group(1)) if non2xx else 0}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("servers", nargs="+", help="LABEL=URL=PID=RESULTS_JSON")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--user")
    p.add_argument("--password")
    args = p.parse_args()
    rows = []
    for spec in args.servers:
        label, url, pid, results = spec.split("=", 3)
        with open(results) as f:
            data = json.load(f)
        for sc in data["results"]:
            name, path = sc.get("scenario"), sc.get("path")
            if name in ("manifest_get", "blob_head") and path:
                shown = "manifest GET" if name == "manifest_get" else "blob GET (64 KiB)"
                r = run(url, int(pid), "GET", path, args.seconds, args.user, args.password)
                rows.append((shown, label, r))
    print("| request (wrk -t1 -c64) | server | req/s | server CPU ms/req | non-2xx |")
    print("|---|---|---|---|---|")
    for name, label, r in rows:
        print(f"| {name} | {label} | {r['req_per_s']:,.0f} | {r['cpu_ms_per_req']} | {r['errors']} |")


if __name__ == "__main__":
    main()
