#!/usr/bin/env python3
"""Pull throughput with registry tokens against anonymous pulls, on one Bulwark.

Usage: auth_pull.py --url URL --pid PID --user USER --password PASSWORD [--rounds N]
                    [regbench options: --only, --scale, --duration, --concurrency, ...]

Runs regbench's pull scenarios (../shared/bench/regbench.py: pull_large, concurrent_pull,
manifest_get, blob_head; `--only` picks some) in two modes, each scenario in both modes
back to back, in alternating order, once per round for N rounds (default 3), the server
left to settle before each run, over the same bytes that USER pushes first into two sets
of repositories:
- token: private repositories, pulled as USER through the Docker token flow (a 401
  challenge, a token from /v2/auth, then the token on every request: the server verifies
  it and reads no database to authorize);
- anonymous: public repositories, pulled without any credentials (the server must run
  with anonymous access on): the server decides each request from the database.
The token mode fetches fresh tokens before each timed run (one per repository, as a client
pulling an image does) and fails if a timed request met a challenge, so the figures
measure token verification, not issuance. Prints a markdown table (medians over the rounds,
each round's figure, token / anonymous) and writes every measurement to --json-out.
"""
import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import urllib.parse

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
sys.path.insert(0, HARNESS)
import aiohttp  # noqa: E402
import regbench  # noqa: E402

PULL_SCENARIOS = ["pull_large", "concurrent_pull", "manifest_get", "blob_head"]
MODES = ["anonymous", "token"]
# Scenario -> its throughput figure (higher is better).
THROUGHPUT = {
    "pull_large": ("MiB_per_s", "MiB/s (best of repeats)"),
    "concurrent_pull": ("aggregate_MiB_per_s", "aggregate MiB/s"),
    "manifest_get": ("req_per_s", "req/s"),
    "blob_head": ("req_per_s", "req/s"),
}


def make_content(ctx):
    """The bytes regbench's pull scenarios pull, made the way its scenarios make them."""
    return {"large": regbench.rand_bytes(ctx.rng, ctx.sz(256)),
            "image": regbench.make_image(ctx.rng, 3, 64 * 1024, ctx.args.flavour),
            "cpull": regbench.rand_bytes(ctx.rng, ctx.sz(32))}


async def push_content(ctx, content, rec):
    """Pushes `content` into repositories under ctx's prefix and records them in ctx as its
    scenarios expect; returns the repositories."""
    sha = regbench.sha
    large, img, cpull = content["large"], content["image"], content["cpull"]
    repos = [f"{ctx.prefix}/large", f"{ctx.prefix}/hot", f"{ctx.prefix}/cpull"]
    ok = await ctx.reg.upload_monolithic(repos[0], large, sha(large), rec)
    ok = ok and await regbench.push_image(ctx.reg, repos[1], "bench", img, rec)
    ok = ok and await ctx.reg.upload_monolithic(repos[2], cpull, sha(cpull), rec)
    if not ok:
        raise RuntimeError(f"set-up push failed: {rec.error_samples}")
    ctx.large = {"data": large, "digest": sha(large), "size": len(large), "repo": repos[0],
                 "pushed": True}
    ctx.small_img = (repos[1], img)
    ctx.cpull = (repos[2], sha(cpull))
    return repos


async def make_public(session, url, auth, repos):
    for repo in repos:
        ns, rest = repo.split("/", 1)
        path = f"/api/v1/repository/{ns}/{urllib.parse.quote(rest, safe='')}/changevisibility"
        async with session.post(url + path, json={"visibility": "public"},
                                headers={"Authorization": auth.basic}) as r:
            if r.status != 200:
                raise RuntimeError(f"{path} -> {r.status}: {(await r.read())[:200]!r}")


async def prime_tokens(reg, repos):
    """One pull request per private repository: each meets the challenge and fetches its
    token."""
    for repo in repos:
        st, _, body = await reg.req("GET", reg.u(f"/v2/{repo}/tags/list"), repo)
        if st != 200:
            raise RuntimeError(f"priming {repo}: {st} {body[:200]!r}")


async def settle(mon, quiet_s=0.5, limit_s=60):
    """Waits until the server is idle (it uses under 2 % of a core for quiet_s), so that no
    scenario pays for work the one before left behind (the action log's batched inserts)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        cpu0 = mon.cpu_s()
        await asyncio.sleep(quiet_s)
        if mon.cpu_s() - cpu0 < 0.02 * quiet_s:
            return


async def run_scenario(ctx, name, mon):
    """One regbench scenario with the server-side figures regbench's driver records."""
    rec = regbench.Rec(name)
    mon.window()
    cpu0, h0, t0 = mon.cpu_s(), regbench.host_cpu(), time.perf_counter()
    client0 = time.process_time()
    client_cpu = await regbench.SC_FUNCS[name](ctx, rec)
    if client_cpu is None:
        client_cpu = time.process_time() - client0
    out = {"scenario": name, **rec.metrics, "errors": rec.errors,
           "error_samples": rec.error_samples, "wall_s": round(time.perf_counter() - t0, 3),
           "server_cpu_s": round(mon.cpu_s() - cpu0, 3), "server_peak_rss_mib": mon.window(),
           "client_cpu_s": round(client_cpu, 3)}
    h1 = regbench.host_cpu()
    out["foreign_cpu_s"] = round(h1[0] - h0[0] - out["server_cpu_s"] - client_cpu, 2)
    if out.get("requests_ok"):
        out["server_cpu_ms_per_req"] = round(out["server_cpu_s"] * 1e3 / out["requests_ok"], 4)
    return out


def median(values):
    return statistics.median(values) if values else None


def table(results, names, rounds):
    fmt = regbench.fmt
    rows = ["| scenario | metric | anonymous | token | token / anonymous |",
            "|---|---|---|---|---|"]
    for name in names:
        key, label = THROUGHPUT[name]
        metrics = [(key, label, f"median of {rounds}")]
        if name in ("manifest_get", "blob_head"):
            metrics.append(("server_cpu_ms_per_req", "server CPU ms/req", ""))
        else:
            metrics.append(("server_cpu_s", "server CPU s", ""))
        for key, label, note in metrics:
            per_mode = {m: [r[key] for r in results if r["mode"] == m and r["scenario"] == name
                            and r.get(key) is not None] for m in MODES}
            med = {m: median(v) for m, v in per_mode.items()}
            ratio = (f"{med['token'] / med['anonymous']:.3f}"
                     if med["token"] is not None and med["anonymous"] else "-")
            shown = {m: f"{fmt(med[m])} ({', '.join(fmt(v) for v in per_mode[m])})" for m in MODES}
            rows.append(f"| {name} | {label}{' ' + note if note else ''} | {shown['anonymous']} "
                        f"| {shown['token']} | {ratio} |")
    errors = sum(r["errors"] for r in results)
    foreign = max((r["foreign_cpu_s"] for r in results), default=0)
    rows.append(f"| (all) | errors / most CPU-s other processes took in a scenario | "
                f"{errors} / {foreign} | | |")
    return "\n".join(rows)


async def main_async(args, rounds):
    names = args.only.split(",") if args.only else PULL_SCENARIOS
    for name in names:
        if name not in THROUGHPUT:
            sys.exit(f"{name} is not a pull scenario: choose from {','.join(PULL_SCENARIOS)}")
    mon = regbench.ProcMon(args.pid)
    mon.start()
    conn = aiohttp.TCPConnector(limit=args.max_conns, limit_per_host=args.max_conns)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False,
                                     timeout=aiohttp.ClientTimeout(total=args.timeout),
                                     read_bufsize=4 * regbench.MiB,
                                     skip_auto_headers=("Accept-Encoding",)) as s:
        # The same bytes in two sets of repositories (one blob each in the store): private
        # ones for the token mode, where every request meets a challenge until the client
        # holds a token, and public ones for the anonymous mode.
        pusher = regbench.Auth(args.user, args.password)
        content = make_content(regbench.Ctx(args, None, pusher))
        ctxs, repos = {}, {}
        for mode in MODES:
            auth = regbench.Auth(args.user, args.password) if mode == "token" else regbench.Auth()
            ctxs[mode] = regbench.Ctx(args, regbench.Reg(args.url, s, auth), auth)
            ctxs[mode].prefix = f"{args.repo_prefix}/{ctxs[mode].run_id}/{mode}"
            pushing = regbench.Ctx(args, regbench.Reg(args.url, s, pusher), pusher)
            pushing.prefix = ctxs[mode].prefix
            repos[mode] = await push_content(pushing, content, regbench.Rec("setup"))
            ctxs[mode].large, ctxs[mode].small_img, ctxs[mode].cpull = (
                pushing.large, pushing.small_img, pushing.cpull)
        await make_public(s, args.url, pusher, repos["anonymous"])

        results, primed = [], 0
        for i in range(rounds):
            for name in names:
                for mode in (MODES if i % 2 == 0 else MODES[::-1]):
                    if mode == "token":
                        # Fresh tokens for this run (they live auth.token_ttl_secs), fetched
                        # as a client pulling an image fetches them.
                        ctxs[mode].auth.by_repo.clear()
                        await prime_tokens(ctxs[mode].reg, repos[mode])
                        primed += len(repos[mode])
                    await settle(mon)
                    out = {"round": i + 1, "mode": mode,
                           **await run_scenario(ctxs[mode], name, mon)}
                    print(json.dumps(out), file=sys.stderr, flush=True)
                    results.append(out)
        fetched = ctxs["token"].auth.token_fetches
        if fetched != primed:
            raise RuntimeError(f"{fetched} tokens fetched, {primed} before the timed runs: "
                               "the token mode did not go through the token flow, or its "
                               "timed requests met challenges")
    mon.stop()
    doc = {"url": args.url, "rounds": rounds, "scale": args.scale, "results": results,
           "server_vmhwm_mib": round((mon.hwm_kb() or 0) / 1024, 1)}
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(doc, f, indent=1)
    print(table(results, names, rounds))
    return 0 if all(r["errors"] == 0 for r in results) else 1


def main():
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--rounds", type=int, default=3)
    mine, rest = own.parse_known_args()
    args = regbench.parse_args(rest)
    if not (args.pid and args.user):
        sys.exit("--pid, --user and --password are required")
    if args.seed is None:
        args.seed = int(time.time())
    return asyncio.run(main_async(args, mine.rounds))


if __name__ == "__main__":
    sys.exit(main())
