/** The public-port publishers, one per protocol. */
import type { PublisherFactory } from './types.js';
import { createTcpPublisher } from './tcp.js';
import { createUdpPublisher } from './udp.js';

export const relayPublishers = {
  tcp: createTcpPublisher,
  udp: createUdpPublisher,
} satisfies Partial<Record<'tcp' | 'udp', PublisherFactory>>;
