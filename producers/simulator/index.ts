/** The simulator as a library: the pure generator, its incidents, and the in-process runner. */
export { TrafficGenerator, generateRange, defaultAccounts, MODEL, DEFAULT_JIRA_FIELD_MAP, type GeneratorOptions, type SimEvent } from './generator.js';
export { INCIDENTS, INCIDENT_NAMES, IncidentTimeline, isIncidentName, type IncidentName, type IncidentSpec, type Effects } from './incidents.js';
export {
  runSimulation,
  resolveIncidents,
  formatProgress,
  systemClock,
  type EventSink,
  type SimClock,
  type SimulationOptions,
  type SimulationDeps,
  type SimProgress,
  type SimulationResult,
  type IncidentRequest,
} from './run.js';
export { parseCliArgs, parseDuration, parseTime, USAGE } from './cli-args.js';
export { createWorld, CDNS, DEVICE_CATEGORIES, COUNTRIES, type World } from './world.js';
export { Prng } from './prng.js';
