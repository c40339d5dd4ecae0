// Drive KafkaJS (a pure JavaScript Kafka client) through the same scenarios
// as clients.py, for captures:
//
//   node kafkajs_client.js BOOTSTRAP SCENARIO [ARG...]
//
//   records CODEC TOPIC   produce the shared record set (none or gzip: KafkaJS
//                         ships only those codecs without plugins)
//   admin TOPIC...        create topics (1 partition)
//   produce TOPIC         3 records (not idempotent: tansu fails InitProducerId v1)
//   offsets TOPIC         fetchTopicOffsets (ListOffsets)
//   consume TOPIC GROUP   group consumer: join, read what is there, commit, leave
//
// Run with NODE_PATH pointing at the node_modules install.sh made.
'use strict';
const { Kafka, CompressionTypes, logLevel } = require('kafkajs');

const BASE_TS = 1700000000000;
// Same records as clients.py RECORDS. KafkaJS header values are strings or
// buffers (an array for a repeated key); a null header value is not possible.
const RECORDS = [
  { key: Buffer.from('key-0'), value: Buffer.from('value-0'),
    headers: { h1: [Buffer.from('a'), Buffer.from('b')] }, dt: 0 },
  { key: null, value: Buffer.from('value with a null key'),
    headers: { h1: Buffer.from('c') }, dt: 1 },
  { key: Buffer.from('key-2'), value: null, headers: {}, dt: 2 },
  { key: Buffer.from('key-3'), value: Buffer.alloc(0), headers: { empty: Buffer.alloc(0) }, dt: 3 },
  { key: Buffer.from('key-4'), value: Buffer.from('repeat '.repeat(20)),
    headers: { h1: Buffer.from('a'), h2: Buffer.from([0x00, 0xff]) }, dt: 250 },
];

async function main() {
  const [boot, scenario, ...args] = process.argv.slice(2);
  const kafka = new Kafka({
    clientId: 'kafka-sansio-capture', brokers: boot.split(','),
    logLevel: logLevel.ERROR, retry: { retries: 3 },
  });
  if (scenario === 'records') {
    const [codec, topic] = args;
    const compression = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }[codec];
    if (compression === undefined) throw new Error('codec not built into KafkaJS: ' + codec);
    const p = kafka.producer();
    await p.connect();
    await p.send({
      topic, compression, acks: -1,
      messages: RECORDS.map((r) => ({
        key: r.key, value: r.value, headers: r.headers, partition: 0,
        timestamp: String(BASE_TS + r.dt),
      })),
    });
    await p.disconnect();
  } else if (scenario === 'admin') {
    const a = kafka.admin();
    await a.connect();
    await a.createTopics({ topics: args.map((t) => ({ topic: t, numPartitions: 1, replicationFactor: 1 })) });
    console.error('topics:', await a.listTopics());
    await a.disconnect();
  } else if (scenario === 'produce') {
    const [topic] = args;
    const p = kafka.producer();
    await p.connect();
    await p.send({
      topic, acks: -1,
      messages: [0, 1, 2].map((i) => ({ key: 'k' + i, value: 'v' + i, partition: 0, headers: { h: 'x' } })),
    });
    await p.disconnect();
  } else if (scenario === 'offsets') {
    const [topic] = args;
    const a = kafka.admin();
    await a.connect();
    console.error('offsets', JSON.stringify(await a.fetchTopicOffsets(topic)));
    await a.disconnect();
  } else if (scenario === 'consume') {
    const [topic, group] = args;
    const c = kafka.consumer({
      groupId: group, sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 100,
    });
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    let got = 0;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('consumed nothing')), 20000);
      c.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          got += 1;
          await c.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }]);
          if (got >= 3) { clearTimeout(timer); resolve(); }
        },
      }).catch(reject);
    });
    await new Promise((r) => setTimeout(r, 1200)); // let a heartbeat go out
    await c.disconnect();
    console.error('consumed', got);
  } else {
    throw new Error('unknown scenario ' + scenario);
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
