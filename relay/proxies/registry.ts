/** The public-port publishers, one per protocol (udp joins when it exists). */
import type { PublisherFactory } from './types.js';
import { createTcpPublisher } from './tcp.js';

export const relayPublishers = {
  tcp: createTcpPublisher,
} satisfies Partial<Record<'tcp' | 'udp', PublisherFactory>>;
