// The "path" adapter contract: something that makes a target service reachable
// at another (public) host:port. direct is the identity; socat, ssh -R and the
// Portico tunnel forward. All addresses are loopback.

export interface Target {
  targetHost: string;
  targetPort: number;
}

export interface Forward {
  host: string;
  port: number;
  stop(): Promise<void>;
}

/** A started path (e.g. one sshd + ssh client, or one Portico relay+agent). */
export interface PathInstance {
  /**
   * When the path dictates which target ports it can forward to (Portico's
   * identity mapping: public P -> local_host:P), the ports it offers; the
   * orchestrator then starts the target services on exactly these ports.
   * null: any target port works.
   */
  targetPorts: number[] | null;
  /** Forward one public port to {targetHost, targetPort}. */
  start(t: Target): Promise<Forward>;
  /** Stop the path and every forward it made. */
  stop(): Promise<void>;
  /** Free-form facts for the JSON report (versions, ciphers, pids). */
  info: Record<string, unknown>;
  /** After a failed measurement: are its processes alive, what did they log. */
  diagnose?(): string;
}

export interface PathAdapter {
  /** Short id used by --only (direct, socat, ssh, ssh-aes, portico). */
  name: string;
  /** Column heading. */
  label: string;
  /** null when usable; otherwise why it is skipped. */
  available(): Promise<string | null>;
  open(opts: { targetHost: string }): Promise<PathInstance>;
}

export class SkipError extends Error {}
