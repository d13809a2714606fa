import { after } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { createLogger } from '../../src/log.ts';
import { KafkaQueue } from '../../src/queue/queue-kafka.ts';
import { MemoryQueue } from '../../src/queue/queue-memory.ts';
import { engineSuite, runId } from '../engines.ts';
import { queueContract } from './queue.contract.ts';

const quiet = createLogger({ test: 'queue' });

// The embedded queue keeps records for the process lifetime and allows one consumer per group.
queueContract('memory', async (observer) => new MemoryQueue(quiet, observer), { durable: false, sharedGroups: false });

engineSuite('queue', 'kafka', (address) => {
  const brokers = address.split(',').map((s) => s.trim()).filter(Boolean);
  const topicPrefix = `sbtest_${runId()}.`;
  const cfg = { brokers, clientId: 'switchboard-test', topicPrefix, partitions: 4, replicationFactor: 1 };
  queueContract('kafka', async (observer) => new KafkaQueue(cfg, createLogger({ test: 'queue-kafka' }), observer));

  after(async () => {
    // Topics (and the groups' offsets in them) of this run all start with its unique prefix.
    const admin = new Kafka({ clientId: 'switchboard-test-cleanup', brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(topicPrefix));
      if (topics.length) await admin.deleteTopics({ topics });
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(topicPrefix));
      if (groups.length) await admin.deleteGroups(groups).catch(() => {});
    } finally {
      await admin.disconnect();
    }
  });
});
