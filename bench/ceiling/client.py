"""regbench's own client code (its Reg and Auth classes, its session settings) doing what
push_large and concurrent_pull time, against any server: what one Python process can send
and take in. Usage: client.py REGBENCH_DIR URL [USER PASSWORD] BLOB_FILE; prints one JSON
line: push MiB/s (a 256 MiB blob, 3 times) and concurrent-pull MiB/s (32 pulls of
BLOB_FILE at once, 3 rounds), with the client's CPU seconds for each."""
import asyncio
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, sys.argv[1])
import aiohttp  # noqa: E402
import regbench  # noqa: E402

MiB = regbench.MiB


async def main(url, blob_file, user, password):
    auth = regbench.Auth(user, password)
    conn = aiohttp.TCPConnector(limit=100, limit_per_host=100)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False, read_bufsize=4 * MiB,
                                     skip_auto_headers=("Accept-Encoding",)) as session:
        reg = regbench.Reg(url, session, auth)
        rec = regbench.Rec("ceiling")
        await reg.req("GET", reg.u("/v2/"), None)
        large = os.urandom(256 * MiB)
        pushes = []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            assert await reg.upload_monolithic("ceiling/large", large, regbench.sha(large), rec)
            pushes.append((round(256 / (time.perf_counter() - t0)), round(time.process_time() - c0, 2)))
        del large
        with open(blob_file, "rb") as f:
            blob = f.read()
        digest = regbench.sha(blob)
        assert await reg.upload_monolithic("ceiling/pull", blob, digest, rec)
        pulls = []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            got = await asyncio.gather(*[reg.get_blob("ceiling/pull", digest, len(blob), rec)
                                         for _ in range(32)])
            assert all(got), rec.error_samples
            pulls.append((round(sum(got) / MiB / (time.perf_counter() - t0)),
                          round(time.process_time() - c0, 2)))
        print(json.dumps({"push_MiB_per_s_and_client_cpu_s": pushes,
                          "concurrent_pull_MiB_per_s_and_client_cpu_s": pulls,
                          "errors": rec.error_samples}))


if __name__ == "__main__":
    a = sys.argv
    user, password = (a[3], a[4]) if len(a) == 6 else (None, None)
    asyncio.run(main(a[2], a[-1], user, password))
