#!/usr/bin/env python3
"""oras-py (OrasClient) against a running Bulwark registry.

Usage: oras_roundtrip.py HOST:PORT WORKDIR USERNAME PASSWORD

Pushes artifacts (files with their own media types, a directory, a custom config and
manifest annotations; one push monolithic, one chunked), pulls them back and compares every
file byte for byte, lists tags (all at once and page by page through Link headers), pushes
an OCI 1.1 artifact manifest with an artifactType and a subject and finds it through the
referrers API, and deletes a tag, logged in as USERNAME. Any failed check raises, so the
exit status is non-zero.
On success prints one JSON object for the Rust side to cross-check over HTTP.
"""

import filecmp
import hashlib
import json
import os
import sys

import oras.client
import oras.defaults
import oras.oci

CONFIG_TYPE = "application/vnd.bulwark.test.config.v1+json"
DATA_TYPE = "application/vnd.bulwark.test.data.v1"
ARTIFACT_TYPE = "application/vnd.bulwark.test.sbom.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
MANIFEST_TYPE = oras.defaults.default_manifest_media_type
TITLE = oras.defaults.annotation_title


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check(response, what, codes=(200, 201, 202)):
    if response.status_code not in codes:
        raise AssertionError(
            f"{what}: HTTP {response.status_code} {response.text[:500]}"
        )
    return response


def write(path: str, data: bytes) -> bytes:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return data


def main() -> None:
    host, work, username, password = sys.argv[1:5]
    # oras-py only pushes files below the working directory.
    os.chdir(work)
    # The basic backend answers each 401 with the credentials on /v2 itself. oras-py's token
    # backend keeps a single token whatever its scope, so the pull-only token of a push's
    # first request (HEAD of a blob) is sent again for the upload and refused (an open bug,
    # oras-project/oras-py#187); skopeo, podman and buildah cover the token flow.
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
    # Without a docker module, login only records the credentials, in this config file
    # (never the user's own), and gives them to the backend.
    client.login(
        username=username,
        password=password,
        hostname=host,
        config_path=os.path.join(work, "docker-config.json"),
    )
    repo = f"{host}/artifacts/demo"

    # What gets pushed: files with and without their own media type, a directory (oras
    # sends it as a tar.gz layer and extracts it on pull), and a custom config.
    readme = write("readme.txt", b"bulwark oras round trip\n")
    data = write("data.bin", os.urandom(300_000) + b"\x00" * 1000)
    write("tree/a.txt", b"first file in a directory\n")
    write("tree/nested/b.json", json.dumps({"nested": True}).encode())
    config = write(
        "artifact-config.json",
        json.dumps({"tool": "oras-py", "purpose": "bulwark test"}).encode(),
    )
    annotations = {"org.opencontainers.image.description": "bulwark oras test"}

    resp = client.push(
        target=f"{repo}:v1",
        files=["readme.txt", f"data.bin:{DATA_TYPE}", "tree"],
        manifest_config=f"artifact-config.json:{CONFIG_TYPE}",
        manifest_annotations=annotations,
        quiet=True,
    )
    check(resp, "push v1")
    assert resp.status_code == 201, resp.status_code
    v1_digest = resp.headers["Docker-Content-Digest"]

    # The manifest as served: our config, media types, titles and annotations.
    manifest = client.get_manifest(f"{repo}:v1")
    assert manifest["mediaType"] == MANIFEST_TYPE, manifest
    assert manifest["config"]["mediaType"] == CONFIG_TYPE, manifest["config"]
    assert manifest["config"]["digest"] == sha256(config), manifest["config"]
    assert manifest["config"]["size"] == len(config)
    assert manifest["annotations"] == annotations, manifest["annotations"]
    layers = {l["annotations"][TITLE]: l for l in manifest["layers"]}
    assert sorted(layers) == ["data.bin", "readme.txt", "tree"], layers
    assert layers["data.bin"]["mediaType"] == DATA_TYPE
    assert layers["data.bin"]["digest"] == sha256(data)
    assert layers["readme.txt"]["digest"] == sha256(readme)
    assert layers["tree"]["mediaType"] == oras.defaults.default_blob_dir_media_type
    blob = client.get_blob(f"{repo}:v1", manifest["config"]["digest"])
    check(blob, "get config blob")
    assert blob.content == config, "config blob differs"

    # Pull back: every file, and the directory, identical.
    pulled = client.pull(target=f"{repo}:v1", outdir=os.path.join(work, "out-v1"))
    assert len(pulled) == 3, pulled
    out = os.path.join(work, "out-v1")
    for name in ["readme.txt", "data.bin", "tree/a.txt", "tree/nested/b.json"]:
        assert filecmp.cmp(name, os.path.join(out, name), shallow=False), name

    # A chunked push (POST, PATCH with Content-Range, PUT) of new content.
    chunky = write("chunky.bin", os.urandom(200_000))
    resp = client.push(
        target=f"{repo}:v2",
        files=["chunky.bin", "readme.txt"],
        manifest_config=f"artifact-config.json:{CONFIG_TYPE}",
        do_chunked=True,
        chunk_size=32 * 1024,
        quiet=True,
    )
    check(resp, "chunked push v2")
    v2_digest = resp.headers["Docker-Content-Digest"]
    pulled = client.pull(target=f"{repo}:v2", outdir=os.path.join(work, "out-v2"))
    assert sorted(os.path.basename(p) for p in pulled) == ["chunky.bin", "readme.txt"]
    assert filecmp.cmp("chunky.bin", os.path.join(work, "out-v2", "chunky.bin"), shallow=False)

    # The same manifest under more tags, and one doomed tag on its own manifest.
    for tag in ["latest", "stable"]:
        check(
            client.push(
                target=f"{repo}:{tag}",
                files=["readme.txt", f"data.bin:{DATA_TYPE}", "tree"],
                manifest_config=f"artifact-config.json:{CONFIG_TYPE}",
                manifest_annotations=annotations,
                quiet=True,
            ),
            f"push {tag}",
        )
    # The directory layer is re-tarred on every push; it may differ in bytes, not in tags.
    write("doomed.txt", b"this tag gets deleted\n")
    check(client.push(target=f"{repo}:doomed", files=["doomed.txt"], quiet=True), "push doomed")

    tags = client.get_tags(repo)
    assert sorted(tags) == ["doomed", "latest", "stable", "v1", "v2"], tags
    assert len(client.get_tags(repo, N=2)) == 2
    # Page by page through the registry's Link headers, with oras-py's own paging.
    paged = []

    def collect(response):
        new = response.json().get("tags") or []
        paged.extend(new)
        return len(new) > 0

    client._do_paginated_request(f"http://{host}/v2/artifacts/demo/tags/list?n=2", collect)
    assert paged == sorted(tags), paged

    assert client.delete_tag(repo, "doomed") is True
    tags = client.get_tags(repo)
    assert sorted(tags) == ["latest", "stable", "v1", "v2"], tags

    # An OCI 1.1 artifact: artifactType, the empty config, and v1 as its subject.
    sbom = write("sbom.json", json.dumps({"packages": ["a", "b"]}).encode())
    container = client.get_container(f"{repo}:sbom")
    sbom_layer = oras.oci.NewLayer("sbom.json", media_type=ARTIFACT_TYPE)
    sbom_layer["annotations"] = {TITLE: "sbom.json"}
    check(client.upload_blob("sbom.json", container, sbom_layer), "upload sbom")
    write("empty.json", b"{}")
    empty = {"mediaType": EMPTY_TYPE, "digest": sha256(b"{}"), "size": 2}
    check(client.upload_blob("empty.json", container, empty), "upload empty config")
    v1_raw = check(
        client.do_request(
            f"http://{host}/v2/artifacts/demo/manifests/{v1_digest}",
            "GET",
            headers={"Accept": MANIFEST_TYPE},
        ),
        "get v1 raw",
    ).content
    assert sha256(v1_raw) == v1_digest
    artifact = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": empty,
        "layers": [sbom_layer],
        "subject": {"mediaType": MANIFEST_TYPE, "digest": v1_digest, "size": len(v1_raw)},
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    resp = check(client.upload_manifest(artifact, container), "push artifact")
    sbom_digest = resp.headers["Docker-Content-Digest"]
    assert resp.headers.get("OCI-Subject") == v1_digest, dict(resp.headers)

    referrers = check(
        client.do_request(f"http://{host}/v2/artifacts/demo/referrers/{v1_digest}", "GET"),
        "referrers",
    ).json()
    found = [m for m in referrers["manifests"] if m["digest"] == sbom_digest]
    assert len(found) == 1, referrers
    assert found[0]["artifactType"] == ARTIFACT_TYPE, found
    pulled = client.pull(target=f"{repo}:sbom", outdir=os.path.join(work, "out-sbom"))
    assert filecmp.cmp("sbom.json", pulled[0], shallow=False)

    print(
        json.dumps(
            {
                "v1": v1_digest,
                "v2": v2_digest,
                "sbom": sbom_digest,
                "config": sha256(config),
                "tags": sorted(client.get_tags(repo)),
            }
        )
    )


if __name__ == "__main__":
    main()
