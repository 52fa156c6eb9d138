// The SQS and SNS emulator of the Go tests (StartSQS): fauxqs on a free
// port, with one correction. fauxqs finds a queue by the exact URL it made
// (http://sqs.<region>.localhost:<port>/<account>/<name>); SQS itself, and
// so the AWS SDK's callers, name it by account and name under any host:
// gocloud's driver sends https://<host in the awssqs:// URL>/<account>/<name>.
import { SqsStore } from "./node_modules/fauxqs/dist/sqs/sqsStore.js";
import { startFauxqs } from "./node_modules/fauxqs/dist/app.js";

const byURL = SqsStore.prototype.getQueue;
SqsStore.prototype.getQueue = function (url) {
  const queue = byURL.call(this, url);
  if (queue || typeof url !== "string") {
    return queue;
  }
  try {
    return this.getQueueByName(new URL(url).pathname.split("/").pop());
  } catch {
    return undefined;
  }
};

const server = await startFauxqs({ port: 0, logger: false });
console.log(`listening http://127.0.0.1:${server.port}`);
