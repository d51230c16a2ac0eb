/** The endpoint table the agent prints on connect: one line per public endpoint. */
import { Protocol, type MappingMsg } from '../proto/index.js';

/** `tcp  connect01.localhost:20003 -> 127.0.0.1:8080` and `https https://….secure.localhost:8443 -> 127.0.0.1:8080`. */
export function endpointLines(mappings: MappingMsg[], localHost: string): string[] {
  const explicit = mappings.filter((m) => m.source !== 'identity');
  const identity = mappings.filter((m) => m.source === 'identity');
  const lines: string[] = [];
  for (const m of [...explicit, ...identity]) {
    const proto = m.protocol === Protocol.UDP ? 'udp' : 'tcp';
    const target = `${localHost}:${m.internalPort}`;
    const hostPort = (m.rawUrl ?? '').replace(/^[a-z]+:\/\//, '');
    // Exactly SPEC's shape, nothing after the target: scripts parse these lines (names and
    // descriptions show in the API and in the named HTTPS URL).
    lines.push(`${proto.padEnd(5)}${hostPort} -> ${target}`);
    for (const url of m.httpsUrls ?? []) lines.push(`${'https'.padEnd(5)} ${url} -> ${target}`);
  }
  return lines;
}
