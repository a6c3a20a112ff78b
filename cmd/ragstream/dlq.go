package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/config"
	"github.com/ragstream/ragstream/dlq"
	"github.com/ragstream/ragstream/pipeline"
)

const dlqUsage = `usage: ragstream dlq inspect|replay --topic T [flags]

  inspect   print dead-lettered records with their error headers
  replay    re-produce selected records to their source topic

run 'ragstream dlq inspect -h' or 'ragstream dlq replay -h' for the flags`

// runDLQ is `ragstream dlq inspect|replay`.
func runDLQ(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, dlqUsage)
		return usagef("missing subcommand: inspect or replay")
	}
	switch args[0] {
	case "inspect":
		return runDLQInspect(args[1:], stdout, stderr)
	case "replay":
		return runDLQReplay(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stderr, dlqUsage)
		return errHelp
	}
	fmt.Fprintln(stderr, dlqUsage)
	return usagef("unknown subcommand %q: want inspect or replay", args[0])
}

// dlqFlags are the flags inspect and replay share: where the DLQ is and
// which records to select.
type dlqFlags struct {
	cf      configFlags
	topic   string
	brokers string
	class   string
	stage   string
	since   string
	until   string
	offsets string
	part    int
	timeout time.Duration
}

func (f *dlqFlags) register(fs *flag.FlagSet) {
	f.cf.register(fs)
	fs.StringVar(&f.topic, "topic", "", "DLQ topic (default: dlq.topic, or <source>.dlq of the one configured kafka.topics)")
	fs.StringVar(&f.brokers, "brokers", "", "comma-separated Kafka brokers, overriding kafka.brokers of the configuration")
	fs.StringVar(&f.class, "class", "", "only records of this ragstream.error.class: "+strings.Join(dlq.Classes, ", "))
	fs.StringVar(&f.stage, "stage", "", "only records of this ragstream.error.stage (decode, validate, sink.neo4j, sink.qdrant)")
	fs.StringVar(&f.since, "since", "", "only records that failed at or after T: RFC 3339, a date, or a duration ago (2h, 7d)")
	fs.StringVar(&f.until, "until", "", "only records that failed before T (same forms as --since)")
	fs.StringVar(&f.offsets, "offsets", "", "only DLQ offsets a-b (inclusive), a- or a, in every partition read")
	fs.IntVar(&f.part, "partition", -1, "only this DLQ partition (default all)")
	fs.DurationVar(&f.timeout, "timeout", 0, "give up after this long (default: no limit; Ctrl-C stops)")
}

// dlqTarget is what the shared flags resolve to.
type dlqTarget struct {
	cfg    *config.Config
	topic  string
	kafka  []kgo.Opt
	filter dlq.Filter
}

// resolve validates the shared flags and loads the configuration; every
// problem is reported together as a usage error.
func (f *dlqFlags) resolve(fs *flag.FlagSet, stderr io.Writer, now time.Time) (dlqTarget, error) {
	var tg dlqTarget
	if fs.NArg() > 0 {
		return tg, usagef("unexpected argument %q", fs.Arg(0))
	}
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	tg.filter = dlq.Filter{Class: f.class, Stage: f.stage}
	if f.since != "" {
		t, err := dlq.ParseTime(f.since, now)
		if err != nil {
			add("--since: %v", err)
		}
		tg.filter.Since = t
	}
	if f.until != "" {
		t, err := dlq.ParseTime(f.until, now)
		if err != nil {
			add("--until: %v", err)
		}
		tg.filter.Until = t
	}
	if f.offsets != "" {
		r, err := dlq.ParseOffsets(f.offsets)
		if err != nil {
			add("--offsets: %v", err)
		} else {
			tg.filter.Offsets = &r
		}
	}
	if f.part < -1 {
		add("--partition: must not be negative, got %d", f.part)
	} else if f.part >= 0 {
		tg.filter.Partitions = []int32{int32(f.part)}
	}
	if f.timeout < 0 {
		add("--timeout: must not be negative, got %s", f.timeout)
	}
	if len(problems) == 0 {
		if err := tg.filter.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				add("--%s", line)
			}
		}
	}
	if len(problems) > 0 {
		return tg, usagef("%s", strings.Join(problems, "\n  "))
	}

	cfg, warnings, err := f.cf.load(false, stderr)
	if err != nil {
		return tg, err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if f.brokers != "" {
		var bs []string
		for _, b := range strings.Split(f.brokers, ",") {
			if b = strings.TrimSpace(b); b != "" {
				bs = append(bs, b)
			}
		}
		if len(bs) == 0 {
			return tg, usagef("--brokers: no broker in %q", f.brokers)
		}
		cfg.Kafka.Brokers = bs
	}
	tg.cfg = cfg
	tg.kafka, err = pipeline.KafkaOpts(cfg.Kafka)
	if err != nil {
		return tg, usageError{err}
	}
	switch {
	case f.topic != "":
		tg.topic = f.topic
	case cfg.DLQ.Topic != "":
		tg.topic = cfg.DLQ.Topic
	case len(cfg.Kafka.Topics) == 1:
		tg.topic = dlq.TopicFor("", cfg.Kafka.Topics[0])
	default:
		return tg, usagef("--topic: required, the configuration names %d source topics (%s)",
			len(cfg.Kafka.Topics), strings.Join(cfg.Kafka.Topics, ", "))
	}
	return tg, nil
}

// context returns the command's context: Ctrl-C and SIGTERM stop it, and
// --timeout bounds it.
func (f *dlqFlags) context() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	if f.timeout <= 0 {
		return ctx, stop
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	return ctx, func() { cancel(); stop() }
}

// reachable fails fast, with the brokers named, when none answers.
func reachable(ctx context.Context, tg dlqTarget) error {
	cl, err := kgo.NewClient(tg.kafka...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("kafka brokers %s do not answer: %w", strings.Join(tg.cfg.Kafka.Brokers, ","), err)
	}
	return nil
}

func runDLQInspect(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq inspect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f dlqFlags
	f.register(fs)
	format := fs.String("format", "table", "output: table, or json (one object per line)")
	limit := fs.Int("limit", 0, "print at most N records (0: all)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ragstream dlq inspect --topic T [--brokers B | --config FILE --set k=v ...]")
		fmt.Fprintln(stderr, "           [--class C] [--since T] [--until T] [--offsets a-b] [--format table|json] [--limit N]")
		fmt.Fprintln(stderr, "prints dead-lettered records with their error headers, reading up to the end offsets at the start")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var problems []string
	if *format != "table" && *format != "json" {
		problems = append(problems, fmt.Sprintf("--format: %q is neither table nor json", *format))
	}
	if *limit < 0 {
		problems = append(problems, fmt.Sprintf("--limit: must not be negative, got %d", *limit))
	}
	if len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "\n  "))
	}
	tg, err := f.resolve(fs, stderr, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := f.context()
	defer cancel()
	if err := reachable(ctx, tg); err != nil {
		return err
	}

	prog := newProgress(stderr, "dlq inspect", time.Now)
	r := &dlq.Reader{Topic: tg.topic, Kafka: tg.kafka, Progress: prog.report}
	var out entryWriter = newTableWriter(stdout)
	if *format == "json" {
		out = &jsonWriter{enc: json.NewEncoder(stdout)}
	}
	n := 0
	err = r.Inspect(ctx, tg.filter, func(e dlq.Entry) error {
		if err := out.write(&e); err != nil {
			return err
		}
		n++
		if *limit > 0 && n >= *limit {
			return dlq.ErrStop
		}
		return nil
	})
	prog.done()
	if ferr := out.flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if *format == "table" {
		fmt.Fprintf(stderr, "%d records from %s\n", n, tg.topic)
	}
	return nil
}

func runDLQReplay(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dlq replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f dlqFlags
	f.register(fs)
	var o dlq.ReplayOptions
	fs.BoolVar(&o.Tombstones, "tombstones", false, "replay tombstones too (skipped by default: a tombstone deletes whatever came after it)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "select and count, produce nothing")
	maxCount := fs.Int("max-replay-count", -1, "refuse records replayed this often already (default: dlq.max_replay_count)")
	format := fs.String("format", "text", "summary: text, or json")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ragstream dlq replay --topic T [--brokers B | --config FILE --set k=v ...]")
		fmt.Fprintln(stderr, "           [--class C] [--since T] [--until T] [--offsets a-b] [--tombstones] [--dry-run] [--max-replay-count N]")
		fmt.Fprintln(stderr, "re-produces selected dead-lettered records to their source topic, DLQ headers removed, replay count one higher")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var problems []string
	if *maxCount < -1 {
		problems = append(problems, fmt.Sprintf("--max-replay-count: must not be negative, got %d", *maxCount))
	}
	if *format != "text" && *format != "json" {
		problems = append(problems, fmt.Sprintf("--format: %q is neither text nor json", *format))
	}
	if len(problems) > 0 {
		return usagef("%s", strings.Join(problems, "\n  "))
	}
	tg, err := f.resolve(fs, stderr, time.Now())
	if err != nil {
		return err
	}
	o.MaxReplayCount = tg.cfg.DLQ.MaxReplayCount
	if *maxCount >= 0 {
		o.MaxReplayCount = *maxCount
	}
	ctx, cancel := f.context()
	defer cancel()
	if err := reachable(ctx, tg); err != nil {
		return err
	}
	prog := newProgress(stderr, "dlq replay", time.Now)
	r := &dlq.Reader{Topic: tg.topic, Kafka: tg.kafka, Progress: prog.report}
	rep, err := r.Replay(ctx, tg.filter, o)
	prog.done()
	if *format == "json" {
		if jerr := json.NewEncoder(stdout).Encode(reportJSON(tg.topic, o, rep)); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		printReport(stdout, tg.topic, o, rep)
	}
	return err
}

// printReport writes Replay's summary for a person.
func printReport(w io.Writer, topic string, o dlq.ReplayOptions, rep dlq.Report) {
	verb := "replayed"
	if rep.DryRun {
		verb = "would replay (dry run, nothing produced)"
	}
	fmt.Fprintf(w, "%s: %d records matched; %s %d", topic, rep.Matched, verb, rep.Replayed)
	if len(rep.ByTopic) > 0 {
		var parts []string
		for _, t := range sortedKeys(rep.ByTopic) {
			parts = append(parts, fmt.Sprintf("%d to %s", rep.ByTopic[t], t))
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "refused (replayed %d times or more): %d; tombstones skipped: %d; invalid: %d; failed: %d\n",
		o.MaxReplayCount, rep.Refused, rep.SkippedTombstones, rep.Invalid, rep.Failed)
	list := func(title string, refs []dlq.Ref, total int) {
		if total == 0 {
			return
		}
		fmt.Fprintf(w, "%s:\n", title)
		for _, r := range refs {
			fmt.Fprintf(w, "  %s/%d@%d  source %s/%d@%d  replay_count %d  correlation_id %s  %s\n",
				topic, r.Partition, r.Offset, r.SourceTopic, r.SourcePartition, r.SourceOffset,
				r.ReplayCount, r.CorrelationID, r.Reason)
		}
		if total > len(refs) {
			fmt.Fprintf(w, "  ... and %d more\n", total-len(refs))
		}
	}
	list("refused", rep.RefusedRecords, rep.Refused)
	list("invalid", rep.InvalidRecords, rep.Invalid)
	list("failed", rep.FailedRecords, rep.Failed)
}

func reportJSON(topic string, o dlq.ReplayOptions, rep dlq.Report) any {
	return struct {
		Topic          string `json:"topic"`
		MaxReplayCount int    `json:"max_replay_count"`
		dlq.Report
	}{topic, o.MaxReplayCount, rep}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// entryWriter prints inspected entries.
type entryWriter interface {
	write(e *dlq.Entry) error
	flush() error
}

// tableWriter prints entries as aligned columns, flushing every so many
// rows so a long read shows output as it goes.
type tableWriter struct {
	tw   *tabwriter.Writer
	rows int
}

func newTableWriter(w io.Writer) *tableWriter {
	t := &tableWriter{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	fmt.Fprintln(t.tw, "PARTITION\tOFFSET\tFAILED_AT\tCLASS\tSTAGE\tSOURCE\tREPLAYS\tKEY\tMESSAGE")
	return t
}

func (t *tableWriter) write(e *dlq.Entry) error {
	failedAt := "-"
	if !e.FailedAt.IsZero() {
		failedAt = e.FailedAt.UTC().Format(dlq.FailedAtLayout)
	}
	src := "-"
	if e.SourceTopic != "" {
		src = fmt.Sprintf("%s/%d@%d", e.SourceTopic, e.SourcePartition, e.SourceOffset)
	}
	msg := e.Message
	if e.Tombstone() {
		msg = "(tombstone) " + msg
	}
	if len(e.Problems) > 0 {
		msg += " [" + strings.Join(e.Problems, "; ") + "]"
	}
	_, err := fmt.Fprintf(t.tw, "%d\t%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", e.Partition, e.Offset, failedAt,
		orDash(e.Class), orDash(e.Stage), src, e.ReplayCount, cell(e.Key, 32), cell([]byte(msg), 80))
	t.rows++
	if err == nil && t.rows%100 == 0 {
		err = t.tw.Flush()
	}
	return err
}

func (t *tableWriter) flush() error { return t.tw.Flush() }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell renders b on one line of at most n runes: printable UTF-8 as is,
// anything else Go-quoted, cut with an ellipsis.
func cell(b []byte, n int) string {
	s := string(b)
	printable := utf8.Valid(b) && strings.IndexFunc(s, func(r rune) bool {
		return !unicode.IsPrint(r) || r == '\t'
	}) < 0
	if !printable {
		s = fmt.Sprintf("%q", b)
	}
	if s == "" {
		return `""`
	}
	if utf8.RuneCountInString(s) > n {
		s = string([]rune(s)[:n-1]) + "…"
	}
	return s
}

// jsonWriter prints one JSON object per entry (dlq.Entry.MarshalJSON).
type jsonWriter struct{ enc *json.Encoder }

func (j *jsonWriter) write(e *dlq.Entry) error { return j.enc.Encode(e) }

func (j *jsonWriter) flush() error { return nil }

// progress writes a progress line to stderr during a read that takes
// longer than a second, at most twice a second, and ends it with a newline.
type progress struct {
	w       io.Writer
	what    string
	now     func() time.Time
	start   time.Time
	last    time.Time
	printed bool
}

func newProgress(w io.Writer, what string, now func() time.Time) *progress {
	return &progress{w: w, what: what, now: now, start: now()}
}

func (p *progress) report(read, total int64) {
	t := p.now()
	if t.Sub(p.start) < time.Second || (p.printed && t.Sub(p.last) < 500*time.Millisecond && read < total) {
		return
	}
	pct := 100.0
	if total > 0 {
		pct = float64(read) * 100 / float64(total)
	}
	fmt.Fprintf(p.w, "\r%s: read %d/%d records (%.0f%%)", p.what, read, total, pct)
	p.last, p.printed = t, true
}

func (p *progress) done() {
	if p.printed {
		fmt.Fprintln(p.w)
	}
}
