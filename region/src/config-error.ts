/** A configuration value that is missing or wrong; the message names its variable and what was expected. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
