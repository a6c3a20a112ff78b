package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	neo4jdrv "github.com/neo4j/neo4j-go-driver/v5/neo4j"
	qc "github.com/qdrant/go-client/qdrant"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/sinks/qdrant"
)

// runVerify shows what landed and checks that the two stores agree: every
// chunk in Neo4j has its point in Qdrant at the same version, and the
// reverse. With --wait it first waits until the group has committed every
// record of its topics.
func runVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf configFlags
	cf.register(fs)
	wait := fs.Duration("wait", 0, "first wait up to this long for the group to commit everything in its topics")
	maxKeys := fs.Int("max-keys", 1_000_000, "compare at most this many keys per store")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ragstream verify [--config FILE] [--set key=value ...] [--wait D]")
		fmt.Fprintln(stderr, "prints what is in Qdrant and Neo4j and checks that they agree (exit 1 when not)")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	cfg, _, err := cf.load(false, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *wait > 0 {
		if err := waitCommitted(ctx, cfg, *wait, stderr); err != nil {
			return err
		}
	}
	return verifyStores(ctx, cfg, *maxKeys, stdout)
}

// waitCommitted polls the group's lag until it is zero on every partition
// of the topics, printing a progress line.
func waitCommitted(ctx context.Context, cfg *config.Config, d time.Duration, progress io.Writer) error {
	kopts, err := pipeline.KafkaOpts(cfg.Kafka)
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		lag, end, err := groupLag(ctx, adm, cfg.Kafka.Group, cfg.Kafka.Topics)
		if err == nil {
			fmt.Fprintf(progress, "\rverify: %d of %d records committed by group %s", end-lag, end, cfg.Kafka.Group)
			if lag == 0 && end > 0 {
				fmt.Fprintln(progress)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(progress)
			return fmt.Errorf("group %s still has %d records to commit after %s: %w", cfg.Kafka.Group, lag, d, errors.Join(err, ctx.Err()))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// groupLag sums end offset minus committed offset over the topics'
// partitions, and the end offsets (from the log start, 0 on a new topic).
func groupLag(ctx context.Context, adm *kadm.Client, group string, topics []string) (lag, end int64, err error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, 0, err
	}
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return 0, 0, err
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, 0, err
	}
	ends.Each(func(o kadm.ListedOffset) {
		start := int64(0)
		if s, ok := starts.Lookup(o.Topic, o.Partition); ok {
			start = s.Offset
		}
		end += o.Offset - start
		c := start
		if r, ok := committed.Lookup(o.Topic, o.Partition); ok && r.At >= 0 {
			c = r.At
		}
		lag += max(o.Offset-c, 0)
	})
	return lag, end, nil
}

type storedKey struct{ tenant, id string }

func verifyStores(ctx context.Context, cfg *config.Config, maxKeys int, out io.Writer) error {
	qsink, err := qdrant.New(qdrant.Config{
		Addr: cfg.Qdrant.Addr, APIKey: cfg.Qdrant.APIKey.Reveal(), Collection: cfg.Qdrant.Collection,
		VectorSize: cfg.Qdrant.VectorSize, Distance: cfg.Qdrant.Distance, TLS: cfg.Qdrant.TLS.Enabled,
		CAFile: cfg.Qdrant.TLS.CAFile, InsecureSkipVerify: cfg.Qdrant.TLS.InsecureSkipVerify,
		Timeout: cfg.Qdrant.Timeout.Duration(),
	})
	if err != nil {
		return err
	}
	defer qsink.Close()
	auth := neo4jdrv.NoAuth()
	if p := cfg.Neo4j.Password.Reveal(); p != "" {
		auth = neo4jdrv.BasicAuth(cfg.Neo4j.User, p, "")
	}
	drv, err := neo4jdrv.NewDriverWithContext(cfg.Neo4j.URI, auth)
	if err != nil {
		return err
	}
	defer drv.Close(ctx)
	db := neo4jdrv.ExecuteQueryWithDatabase(cfg.Neo4j.Database)

	points, err := qdrantVersions(ctx, qsink.Client(), cfg.Qdrant.Collection, maxKeys)
	if err != nil {
		return fmt.Errorf("read qdrant: %w", err)
	}
	count := func(q string) (int64, error) {
		res, err := neo4jdrv.ExecuteQuery(ctx, drv, q, nil, neo4jdrv.EagerResultTransformer, db)
		if err != nil {
			return 0, err
		}
		n, _ := res.Records[0].Values[0].(int64)
		return n, nil
	}
	var counts [5]int64
	for i, q := range []string{
		"MATCH (c:Chunk) RETURN count(c)",
		"MATCH (e:Entity) RETURN count(e)",
		"MATCH (:Chunk)-[m:MENTIONS]->(:Entity) RETURN count(m)",
		"MATCH (:Entity)-[r]->(:Entity) RETURN count(r)",
		"MATCH (t:ChunkTombstone) RETURN count(t)",
	} {
		if counts[i], err = count(q); err != nil {
			return fmt.Errorf("read neo4j: %w", err)
		}
	}
	res, err := neo4jdrv.ExecuteQuery(ctx, drv,
		"MATCH (c:Chunk) RETURN c.tenant, c.id, c.version LIMIT $max",
		map[string]any{"max": int64(maxKeys)}, neo4jdrv.EagerResultTransformer, db)
	if err != nil {
		return fmt.Errorf("read neo4j chunks: %w", err)
	}
	chunks := make(map[storedKey]int64, len(res.Records))
	for _, r := range res.Records {
		t, _ := r.Values[0].(string)
		id, _ := r.Values[1].(string)
		v, _ := r.Values[2].(int64)
		chunks[storedKey{t, id}] = v
	}

	fmt.Fprintf(out, "Qdrant  collection %q: %d points\n", cfg.Qdrant.Collection, len(points))
	fmt.Fprintf(out, "Neo4j   %d Chunk nodes, %d Entity nodes, %d MENTIONS, %d entity relationships, %d deletion markers\n",
		counts[0], counts[1], counts[2], counts[3], counts[4])

	var problems []string
	for k, v := range chunks {
		pv, ok := points[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s/%s: chunk in Neo4j (version %d) has no Qdrant point", k.tenant, k.id, v))
		case pv != v:
			problems = append(problems, fmt.Sprintf("%s/%s: version %d in Neo4j, %d in Qdrant", k.tenant, k.id, v, pv))
		}
	}
	for k, v := range points {
		if _, ok := chunks[k]; !ok {
			problems = append(problems, fmt.Sprintf("%s/%s: Qdrant point (version %d) has no chunk in Neo4j", k.tenant, k.id, v))
		}
	}
	if err := showChunk(ctx, drv, db, out); err != nil {
		return fmt.Errorf("read neo4j sample chunk: %w", err)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		shown := problems[:min(len(problems), 20)]
		return fmt.Errorf("the stores disagree on %d keys:\n  %s", len(problems), strings.Join(shown, "\n  "))
	}
	fmt.Fprintf(out, "OK      the stores agree on all %d chunks\n", len(chunks))
	return nil
}

// qdrantVersions scrolls the collection and returns each point's key and version.
func qdrantVersions(ctx context.Context, c *qc.Client, collection string, maxKeys int) (map[storedKey]int64, error) {
	out := map[storedKey]int64{}
	var offset *qc.PointId
	for len(out) < maxKeys {
		pts, next, err := c.ScrollAndOffset(ctx, &qc.ScrollPoints{
			CollectionName: collection,
			Limit:          qc.PtrOf(uint32(1000)),
			Offset:         offset,
			WithPayload:    qc.NewWithPayloadInclude(qdrant.FieldTenant, qdrant.FieldID, qdrant.FieldVersion),
		})
		if err != nil {
			return nil, err
		}
		for _, p := range pts {
			pl := p.GetPayload()
			out[storedKey{pl[qdrant.FieldTenant].GetStringValue(), pl[qdrant.FieldID].GetStringValue()}] = pl[qdrant.FieldVersion].GetIntegerValue()
		}
		if next == nil {
			break
		}
		offset = next
	}
	return out, nil
}

// showChunk prints the chunk that mentions the most entities, with its
// entities and their neighbours: what a graph expansion would hand an LLM.
func showChunk(ctx context.Context, drv neo4jdrv.DriverWithContext, db neo4jdrv.ExecuteQueryConfigurationOption, out io.Writer) error {
	res, err := neo4jdrv.ExecuteQuery(ctx, drv, `
MATCH (c:Chunk)-[:MENTIONS]->(e:Entity)
WITH c, count(e) AS n ORDER BY n DESC, c.tenant, c.id LIMIT 1
MATCH (c)-[:MENTIONS]->(e:Entity)
OPTIONAL MATCH (e)-[r]-(x:Entity)
WITH c, e, collect(DISTINCT CASE WHEN r IS NULL THEN null
  ELSE CASE WHEN startNode(r) = e THEN '-[' + type(r) + ']-> ' + x.name ELSE '<-[' + type(r) + ']- ' + x.name END END) AS nb
RETURN c.tenant, c.id, c.version, c.text, e.name, [l IN labels(e) WHERE l <> 'Entity'][0], nb
ORDER BY e.name`, nil, neo4jdrv.EagerResultTransformer, db)
	if err != nil || len(res.Records) == 0 {
		return err
	}
	r0 := res.Records[0].Values
	text, _ := r0[3].(string)
	if r := []rune(text); len(r) > 120 {
		text = string(r[:120]) + "…"
	}
	fmt.Fprintf(out, "\nChunk   %v/%v (version %v)\n        %q\n", r0[0], r0[1], r0[2], text)
	for _, rec := range res.Records {
		v := rec.Values
		fmt.Fprintf(out, "  mentions %v (%v)\n", v[4], v[5])
		nbs, _ := v[6].([]any)
		for i, nb := range nbs {
			if i == 5 {
				fmt.Fprintf(out, "      … %d more\n", len(nbs)-5)
				break
			}
			fmt.Fprintf(out, "      %v\n", nb)
		}
	}
	fmt.Fprintln(out)
	return nil
}
