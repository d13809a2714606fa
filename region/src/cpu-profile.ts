import fs from 'node:fs';
import { Session } from 'node:inspector/promises';

/**
 * REGION_CPU_PROFILE=/path/region.cpuprofile samples this process's JavaScript from start to a
 * clean stop and writes a .cpuprofile (Chrome DevTools opens it; `npm run profile:edge` prints the
 * edge's the same way). For finding where the region's CPU goes under a benchmark; off by default.
 */
export async function startCpuProfile(file: string): Promise<() => Promise<void>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    fs.writeFileSync(file, JSON.stringify(profile));
    session.disconnect();
  };
}
