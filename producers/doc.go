// Package producers turns interaction logs into event streams and replays them into Kafka.
//
// Three kinds of source feed the rest of visrec:
//
//   - log readers (OpenLog, ReadLog): MovieLens ratings.csv, u.data and ratings.dat, a
//     generic CSV whose header names its columns, and JSONL with one event-schema-v1 object
//     per line;
//   - a seeded synthetic generator (NewSynthetic) with planted user/item factors, item
//     "visual" features correlated with the item factors, power-law popularity and items
//     released progressively, for demos and scale tests;
//   - any []events.Interaction (NewSliceSource).
//
// All of them implement Source. A Replayer writes a Source to a Sink (a Kafka topic through
// kafka-go, or a counter in tests), keyed by user, paced as fast as possible, at a fixed
// rate, or by the log's own timestamps sped up by a factor.
//
// Sources deliver events in non-decreasing timestamp order: that is what the updaters and
// the prequential evaluation expect, and what keeps one user's events in order inside the
// user's partition.
package producers
