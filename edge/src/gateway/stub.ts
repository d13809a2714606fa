import type { Env } from '../config.ts';
import { locationHint } from './placement.ts';

/** The stub of gateway `name`, created near its placement (a location hint counts at creation only). */
export function gatewayStub(ns: Env['GATEWAYS'], name: string) {
  const hint = locationHint(name);
  return ns.get(ns.idFromName(name), hint ? { locationHint: hint } : undefined);
}

export type GatewayStub = ReturnType<typeof gatewayStub>;
