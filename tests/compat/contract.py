"""The Backend.AI client contract test (SPEC §13, issue #14): the unmodified SDK
(`backend-ai-client` 26.9.6) against a real `sessiond serve`.

It creates a folder with the SDK, fills it through sessiond's own file API (a bearer
key of the same owner), clones it with the SDK, follows the clone task with
`BackgroundTask(id).listen_events()` until `server_close`, then lists the folders with
the SDK and checks the clone is `ready` with the same files. Then it checks that bad
signatures, stale dates, unknown access keys and a request carrying two credentials are
refused with 401 and a JSON body. Prints one line per step; exits non-zero on any
failure. Environment: BACKEND_ENDPOINT, BACKEND_ACCESS_KEY, BACKEND_SECRET_KEY,
BACKEND_ENDPOINT_TYPE=api (read by the SDK), SESSIOND_KEY (bearer key of the same owner).
"""

import asyncio
import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.error
import urllib.request

from ai.backend.client.session import AsyncSession

BASE = os.environ["BACKEND_ENDPOINT"].rstrip("/")
BEARER = os.environ["SESSIOND_KEY"]
FILES = {
    "a.txt": b"hello from sessiond\n",
    "dir/b.bin": bytes(range(256)) * 512,
    "dir/deeper/empty": b"",
}


def http(method, path, body=None, headers=None):
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def bearer(method, path, body=None):
    return http(method, path, body, {"Authorization": f"Bearer {BEARER}"})


def step(what):
    print(f"contract: {what}", flush=True)


async def main():
    async with AsyncSession() as s:
        step(f"negotiated API version {s.api_version}")
        created = await s.VFolder.create(name="sdk-src", cloneable=False)
        assert created["name"] == "sdk-src", created
        step(f"created folder {created['id']}")
        for path, data in FILES.items():
            status, body = bearer("PUT", f"/v1/vfolders/sdk-src/files/{path}", data)
            assert status == 201, (status, body)
        step("filled it through /v1/vfolders/sdk-src/files")
        result = await s.VFolder("sdk-src").clone("sdk-dst")
        task_id = result["bgtask_id"]
        assert result["name"] == "sdk-dst" and len(result["id"]) == 32, result
        step(f"cloned: task {task_id}")
        frames = []
        async with s.BackgroundTask(task_id).listen_events() as response:
            async for ev in response:
                frames.append((ev.event, json.loads(ev.data)))
        names = [e for e, _ in frames]
        assert names[-1] == "server_close" and frames[-1][1] == {}, frames
        assert names[-2] == "bgtask_done", frames
        assert all(n == "bgtask_updated" for n in names[:-2]), frames
        for name, data in frames[:-1]:
            assert data["task_id"] == task_id, data
        step(f"task stream: {' '.join(names)}")
        folders = await s.VFolder.list()
        by_name = {f["name"]: f for f in folders}
        assert by_name["sdk-dst"]["status"] == "ready", folders
        step("the clone is listed ready")
    for path, data in FILES.items():
        status, body = bearer("GET", f"/v1/vfolders/sdk-dst/files/{path}")
        assert status == 200 and body == data, (path, status, len(body))
    step("the clone has the same files")

    # Refusals: each 401 with a JSON body, nothing changed.
    ak, sk = os.environ["BACKEND_ACCESS_KEY"], os.environ["BACKEND_SECRET_KEY"]
    host = BASE.split("://", 1)[1]

    def signed(path, key=sk, access=ak, date=None, extra=None):
        date = date or datetime.datetime.now(datetime.timezone.utc)
        d = date.isoformat()
        string = f"GET\n{path}\n{d}\nhost:{host}\ncontent-type:application/octet-stream\nx-backendai-version:v8.20240915\n{hashlib.sha256(b'').hexdigest()}"
        k = hmac.new(key.encode(), date.strftime("%Y%m%d").encode(), "sha256").digest()
        k = hmac.new(k, host.encode(), "sha256").digest()
        sig = hmac.new(k, string.encode(), "sha256").hexdigest()
        headers = {
            "Date": d,
            "X-BackendAI-Version": "v8.20240915",
            "Authorization": f"BackendAI signMethod=HMAC-SHA256, credential={access}:{sig}",
        }
        headers.update(extra or {})
        return http("GET", path, None, headers)

    status, _ = signed("/v1/vfolders")
    assert status == 200, status
    stale = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=16)
    for what, (status, body) in {
        "a wrong signature": signed("/v1/vfolders", key="not-the-secret"),
        "a stale date": signed("/v1/vfolders", date=stale),
        "an unknown access key": signed("/v1/vfolders", access="AKIAUNKNOWNUNKNOWN00"),
    }.items():
        assert status == 401, (what, status)
        assert json.loads(body)["error"]["code"] == "unauthorized", (what, body)
        step(f"{what}: 401")
    print("contract: ok", flush=True)


asyncio.run(asyncio.wait_for(main(), timeout=120))
