export * from './topics.js';
export * from './schemas.js';
export * from './validate.js';
export * from './wire.js';
export type * from './types.generated.js';
