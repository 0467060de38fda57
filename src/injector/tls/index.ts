export * from './certificates.js';
export * from './certificate-manager.js';
export * from './secret-store.js';
