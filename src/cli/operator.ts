// `meshrev operator`: the production entry point (the container runs exactly this) and `make run`.
import { ConfigError, loadOperatorConfig, operatorUsage } from '../config.js';
import { startOperator } from '../operator.js';

export async function runOperator(args: string[]): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) {
    console.log(operatorUsage());
    return 0;
  }
  let config;
  try {
    config = loadOperatorConfig(args);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`meshrev: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const operator = await startOperator(config);
  let signalled = false;
  const shutdown = (signal: string): void => {
    if (signalled) return;
    signalled = true;
    console.error(`meshrev: ${signal} received, draining`);
    void operator.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await operator.done;
  if (!signalled) {
    // Leadership was lost: exit so the replica restarts with fresh caches (client-go does the same).
    await operator.stop();
    return 1;
  }
  return new Promise<number>(() => undefined); // shutdown() exits the process
}
