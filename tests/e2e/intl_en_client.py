"""Runs calls with the official intl-en SDK, installed apart from the CN SDK (same namespace).

Invoked as a subprocess with PYTHONPATH pointing at that installation. Reads a JSON job on
stdin, prints one JSON result per call: {"code", "message", "request_id"} or {"response"}.
"""

import json
import sys
import time
import types

from tencentcloud.common import abstract_client, credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.cwp.v20180228 import cwp_client


def main() -> None:
    job = json.load(sys.stdin)
    results = []
    for call in job["calls"]:
        http = HttpProfile(
            endpoint=job["endpoint"], protocol="http", reqMethod=call.get("method", "POST")
        )
        profile = ClientProfile(signMethod=call.get("sign", "TC3-HMAC-SHA256"), httpProfile=http)
        secret_key = call.get("secret_key", job["secret_key"])
        client = cwp_client.CwpClient(
            credential.Credential(call.get("secret_id", job["secret_id"]), secret_key),
            "ap-singapore",
            profile,
        )
        if "version" in call:
            client._apiVersion = call["version"]
        offset = call.get("offset", 0)
        abstract_client.time = types.SimpleNamespace(
            time=lambda o=offset: time.time() + o, sleep=time.sleep
        )
        try:
            body = client.call(call["action"], call["params"])
            results.append({"response": json.loads(body)["Response"], "language": profile.language})
        except TencentCloudSDKException as error:
            results.append(
                {
                    "code": error.get_code(),
                    "message": error.get_message(),
                    "request_id": error.get_request_id(),
                }
            )
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
