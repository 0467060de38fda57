// Integration tests talk to a real control plane: give them room, but every wait inside a test is
// a bounded wait-for-condition with its own message.
import { jest } from '@jest/globals';

jest.setTimeout(120_000);
