export * from './condition.js';
export * from './constants.js';
export * from './controlplanerevision.js';
export * from './crd.js';
export * from './revisiontag.js';
export * from './structural.js';
export * from './names.js';
