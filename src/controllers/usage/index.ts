export * from './selection.js';
export * from './usage.js';
