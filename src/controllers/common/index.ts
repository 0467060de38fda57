export * from './conditions.js';
export * from './labels.js';
export * from './names.js';
export * from './objects.js';
export * from './owner.js';
export * from './versions.js';
export * from './webhooks.js';
