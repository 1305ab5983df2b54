// Runs CWP calls with the official tencentcloud-sdk-nodejs, unchanged.
// Reads {"endpoint", "secretId", "secretKey", "calls": [{"action", "params", "method", "sign"}]}
// on stdin and prints one result per call: {"response"} or {"code", "message", "requestId"}.
"use strict";
const tencentcloud = require("tencentcloud-sdk-nodejs");

const CwpClient = tencentcloud.cwp.v20180228.Client;

async function main() {
  const job = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const results = [];
  for (const call of job.calls) {
    const client = new CwpClient({
      credential: { secretId: job.secretId, secretKey: job.secretKey },
      region: "ap-guangzhou",
      profile: {
        signMethod: call.sign || "TC3-HMAC-SHA256",
        language: call.language,
        httpProfile: { endpoint: job.endpoint, protocol: "http://", reqMethod: call.method || "POST" },
      },
    });
    try {
      results.push({ response: await client[call.action](call.params) });
    } catch (error) {
      results.push({ code: error.code, message: error.message, requestId: error.requestId });
    }
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
