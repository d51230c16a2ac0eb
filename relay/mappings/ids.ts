/** Fresh identifiers for mappings and their HTTPS hosts. */
import { randomBase32 } from '../auth/tokens.js';

export function newMappingId(): string {
  return `port_${randomBase32(12)}`;
}

/** 26 base32 chars = 130 random bits, lowercase, DNS-label safe. */
export function newHttpsToken(): string {
  return randomBase32(26);
}
