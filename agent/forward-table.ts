/** The agent's forwarding table: mapping id -> what to dial. Replaced whole on every Welcome / MappingsUpdate. */
import type { MappingMsg } from '../proto/index.js';

export class ForwardTable {
  private byId = new Map<string, MappingMsg>();
  ports: number[] = [];
  udp = false;

  replace(mappings: MappingMsg[], ports: number[], udp: boolean): void {
    this.byId = new Map(mappings.map((m) => [m.id, m]));
    this.ports = ports;
    this.udp = udp;
  }

  get(id: string): MappingMsg | undefined {
    return this.byId.get(id);
  }

  all(): MappingMsg[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }
}
