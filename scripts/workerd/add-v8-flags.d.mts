export class ConfigPatchError extends Error {}
export function addV8Flags(message: Buffer, flags: string[]): Buffer;
