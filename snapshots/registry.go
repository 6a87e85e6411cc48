// Package snapshots publishes versioned model snapshots in Redis: a retrain writes a new
// version beside the live one, flips the model's live pointer atomically, and the previous
// versions stay for rollback (DESIGN.md, Contracts: snapshots are versioned).
//
// # Key layout
//
// Keys share the feature store's hash tag {ns}, so on Redis Cluster a namespace's snapshots
// live in the slot of its state:
//
//	{ns}:snap:<model>:<version>  string  the snapshot in the VRSNAP format (models.WriteSnapshot)
//	{ns}:snaps:<model>           hash    version (decimal) → JSON Info of a published version
//	{ns}:snapseq:<model>         string  the last version number handed out (INCR)
//	{ns}:live:<model>            string  the live version (decimal)
//
// For example: redis-cli GET '{visrec}:live:wmf', redis-cli HGETALL '{visrec}:snaps:wmf'.
//
// A version is visible (listed, loadable, a rollback target) once its Info is in the hash;
// Publish writes the blob first and then, in one script, the Info and the pointer. A publisher
// that dies between the two leaves an unlisted blob, which Prune deletes.
package snapshots

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/visrec/visrec/models"
)

// ErrNoVersion is returned for a model or version that has no published snapshot.
var ErrNoVersion = errors.New("snapshots: no such version")

// Info describes a published version.
type Info struct {
	Model       string    `json:"model"`
	Version     int64     `json:"version"`
	PublishedAt time.Time `json:"published_at"`
	Bytes       int       `json:"bytes"`
	// Offsets are the Kafka offsets the snapshot covers (its Meta "offset:<topic>:<p>"
	// entries): topic → partition → next offset. Empty for a snapshot trained on a file.
	Offsets map[string]map[int]int64 `json:"offsets,omitempty"`
	Live    bool                     `json:"-"` // set by List
}

// Registry reads and writes the versions of a namespace. It is safe for concurrent use.
type Registry struct {
	c  redis.UniversalClient
	ns string
}

// New returns the registry of namespace ns on c (which the caller keeps and closes).
func New(c redis.UniversalClient, ns string) (*Registry, error) {
	if ns == "" || strings.ContainsAny(ns, "{}") {
		return nil, fmt.Errorf("snapshots: bad namespace %q", ns)
	}
	return &Registry{c: c, ns: ns}, nil
}

func (r *Registry) key(kind, model string) string { return "{" + r.ns + "}:" + kind + ":" + model }

func (r *Registry) blobKey(model string, v int64) string {
	return r.key("snap", model) + ":" + strconv.FormatInt(v, 10)
}

// OffsetsOf returns the offsets recorded in snap.Meta ("offset:<topic>:<partition>" →
// next offset, as updater.Snapshot writes them).
func OffsetsOf(snap models.Snapshot) (map[string]map[int]int64, error) {
	out := map[string]map[int]int64{}
	for k, v := range snap.Meta {
		rest, ok := strings.CutPrefix(k, "offset:")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, ':')
		if i < 0 {
			return nil, fmt.Errorf("snapshots: meta key %q is not offset:<topic>:<partition>", k)
		}
		p, err1 := strconv.Atoi(rest[i+1:])
		o, err2 := strconv.ParseInt(v, 10, 64)
		if err := errors.Join(err1, err2); err != nil || p < 0 || o < 0 {
			return nil, fmt.Errorf("snapshots: meta %q=%q is not a partition offset", k, v)
		}
		if out[rest[:i]] == nil {
			out[rest[:i]] = map[int]int64{}
		}
		out[rest[:i]][p] = o
	}
	return out, nil
}

// Publish writes snap as the model's next version and makes it live. It returns the new
// version's Info.
func (r *Registry) Publish(ctx context.Context, snap models.Snapshot) (Info, error) {
	return r.publish(ctx, snap, true)
}

// Add writes snap as the model's next version without making it live: a rollback target
// at once, live after Rollback to it. An installation (Install) adds, installs, then flips.
func (r *Registry) Add(ctx context.Context, snap models.Snapshot) (Info, error) {
	return r.publish(ctx, snap, false)
}

func (r *Registry) publish(ctx context.Context, snap models.Snapshot, live bool) (Info, error) {
	offs, err := OffsetsOf(snap)
	if err != nil {
		return Info{}, err
	}
	var buf bytes.Buffer
	if err := models.WriteSnapshot(&buf, snap); err != nil {
		return Info{}, fmt.Errorf("snapshots: publish %s: %w", snap.Model, err)
	}
	v, err := r.c.Incr(ctx, r.key("snapseq", snap.Model)).Result()
	if err != nil {
		return Info{}, fmt.Errorf("snapshots: publish %s: %w", snap.Model, err)
	}
	info := Info{Model: snap.Model, Version: v, PublishedAt: time.Now().UTC().Truncate(time.Millisecond),
		Bytes: buf.Len(), Offsets: offs}
	if len(info.Offsets) == 0 {
		info.Offsets = nil
	}
	js, err := json.Marshal(info)
	if err != nil {
		return Info{}, err
	}
	if err := r.c.Set(ctx, r.blobKey(snap.Model, v), buf.Bytes(), 0).Err(); err != nil {
		return Info{}, fmt.Errorf("snapshots: publish %s v%d: %w", snap.Model, v, err)
	}
	flip := "0"
	if live {
		flip = "1"
	}
	ok, err := flipScript.Run(ctx, r.c, []string{r.blobKey(snap.Model, v), r.key("snaps", snap.Model), r.key("live", snap.Model)},
		strconv.FormatInt(v, 10), js, flip).Int()
	if err != nil {
		return Info{}, fmt.Errorf("snapshots: publish %s v%d: flip: %w", snap.Model, v, err)
	}
	if ok == 0 {
		return Info{}, fmt.Errorf("snapshots: publish %s v%d: the blob vanished before the flip (pruned by a concurrent Prune?)", snap.Model, v)
	}
	return info, nil
}

// Live returns the model's live version, or 0 when none was published.
func (r *Registry) Live(ctx context.Context, model string) (int64, error) {
	s, err := r.c.Get(ctx, r.key("live", model)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("snapshots: live version of %s: %w", model, err)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("snapshots: live version of %s is %q: %w", model, s, err)
	}
	return v, nil
}

// List returns the model's published versions, oldest first, the live one marked.
func (r *Registry) List(ctx context.Context, model string) ([]Info, error) {
	m, err := r.c.HGetAll(ctx, r.key("snaps", model)).Result()
	if err != nil {
		return nil, fmt.Errorf("snapshots: list %s: %w", model, err)
	}
	live, err := r.Live(ctx, model)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(m))
	for field, js := range m {
		var in Info
		if err := json.Unmarshal([]byte(js), &in); err != nil {
			return nil, fmt.Errorf("snapshots: list %s: version %s: %w", model, field, err)
		}
		in.Live = in.Version == live
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int { return int(a.Version - b.Version) })
	return out, nil
}

// Load reads a published version (0: the live one).
func (r *Registry) Load(ctx context.Context, model string, version int64) (models.Snapshot, Info, error) {
	if version == 0 {
		v, err := r.Live(ctx, model)
		if err != nil {
			return models.Snapshot{}, Info{}, err
		}
		if v == 0 {
			return models.Snapshot{}, Info{}, fmt.Errorf("%w: %s has no live version", ErrNoVersion, model)
		}
		version = v
	}
	info, err := r.info(ctx, model, version)
	if err != nil {
		return models.Snapshot{}, Info{}, err
	}
	b, err := r.c.Get(ctx, r.blobKey(model, version)).Bytes()
	if errors.Is(err, redis.Nil) {
		return models.Snapshot{}, Info{}, fmt.Errorf("%w: %s v%d is listed but its blob is gone", ErrNoVersion, model, version)
	}
	if err != nil {
		return models.Snapshot{}, Info{}, fmt.Errorf("snapshots: load %s v%d: %w", model, version, err)
	}
	snap, err := models.ReadSnapshot(bytes.NewReader(b))
	if err != nil {
		return models.Snapshot{}, Info{}, fmt.Errorf("snapshots: load %s v%d: %w", model, version, err)
	}
	if snap.Model != model {
		return models.Snapshot{}, Info{}, fmt.Errorf("snapshots: %s v%d holds a snapshot of %q", model, version, snap.Model)
	}
	return snap, info, nil
}

func (r *Registry) info(ctx context.Context, model string, version int64) (Info, error) {
	js, err := r.c.HGet(ctx, r.key("snaps", model), strconv.FormatInt(version, 10)).Result()
	if errors.Is(err, redis.Nil) {
		return Info{}, fmt.Errorf("%w: %s v%d", ErrNoVersion, model, version)
	}
	if err != nil {
		return Info{}, fmt.Errorf("snapshots: %s v%d: %w", model, version, err)
	}
	var in Info
	if err := json.Unmarshal([]byte(js), &in); err != nil {
		return Info{}, fmt.Errorf("snapshots: %s v%d: %w", model, version, err)
	}
	return in, nil
}

// flipScript lists a version and (ARGV[3] '1') makes it live, provided that its blob exists.
var flipScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if ARGV[3] == '1' then redis.call('SET', KEYS[3], ARGV[1]) end
return 1`)

// rollbackScript flips the live pointer to a listed version whose blob exists.
var rollbackScript = redis.NewScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 or redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('SET', KEYS[3], ARGV[1])
return 1`)

// Rollback makes a published version live again.
func (r *Registry) Rollback(ctx context.Context, model string, version int64) error {
	ok, err := rollbackScript.Run(ctx, r.c, []string{r.key("snaps", model), r.blobKey(model, version), r.key("live", model)},
		strconv.FormatInt(version, 10)).Int()
	if err != nil {
		return fmt.Errorf("snapshots: rollback %s to v%d: %w", model, version, err)
	}
	if ok == 0 {
		return fmt.Errorf("%w: %s v%d", ErrNoVersion, model, version)
	}
	return nil
}

// Prune deletes all but the newest keep versions of the model (never the live one), and
// blobs that no listed version owns (left by a publisher that died before its flip). It
// returns the versions deleted.
func (r *Registry) Prune(ctx context.Context, model string, keep int) ([]int64, error) {
	list, err := r.List(ctx, model)
	if err != nil {
		return nil, err
	}
	listed := map[string]bool{}
	var gone []int64
	for i, in := range list {
		if len(list)-i <= keep || in.Live {
			listed[r.blobKey(model, in.Version)] = true
			continue
		}
		if _, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HDel(ctx, r.key("snaps", model), strconv.FormatInt(in.Version, 10))
			p.Del(ctx, r.blobKey(model, in.Version))
			return nil
		}); err != nil {
			return gone, fmt.Errorf("snapshots: prune %s v%d: %w", model, in.Version, err)
		}
		gone = append(gone, in.Version)
	}
	// Orphans: blobs of versions that never made it into the hash. A blob newer than the
	// newest listed version may belong to a Publish in progress, so it is left alone.
	var newest int64
	if len(list) > 0 {
		newest = list[len(list)-1].Version
	}
	iter := r.c.Scan(ctx, 0, globEscape(r.key("snap", model))+":*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := strconv.ParseInt(k[strings.LastIndexByte(k, ':')+1:], 10, 64)
		if err != nil || listed[k] || v >= newest {
			continue
		}
		if err := r.c.Del(ctx, k).Err(); err != nil {
			return gone, fmt.Errorf("snapshots: prune %s: %w", k, err)
		}
		gone = append(gone, v)
	}
	if err := iter.Err(); err != nil {
		return gone, fmt.Errorf("snapshots: prune %s: %w", model, err)
	}
	return gone, nil
}

// globEscape escapes the glob metacharacters of s for SCAN MATCH.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\{}`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
