package neo4j

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ragstream/ragstream/pipeline"
	"github.com/ragstream/ragstream/pipeline/event"
)

// pinCase is a batch whose plan TestPlanPinned pins.
type pinCase struct {
	name   string
	writes []pipeline.Write
	priors map[pipeline.Key]*chunkGraph
	meta   chunkMeta
}

// pinCases returns sample events (as the benchmarks use them) and made-up
// ones that reach every branch of the encoding: escapes, invalid UTF-8,
// every value kind, null props and metadata values, nested metadata, no
// ts, no source record; and a rewrite and a delete over stored assertions.
func pinCases(t testing.TB) []pinCase {
	t.Helper()
	now := time.Date(2026, 1, 9, 10, 11, 12, 13, time.UTC)
	var cases []pinCase

	batch := benchBatches(t, "pin", 3, 1)[0]
	sampleWrites := make([]pipeline.Write, len(batch.Records))
	for i, r := range batch.Records {
		sampleWrites[i] = pipeline.Write{Key: r.Key(), Action: pipeline.ActionUpsert, Record: r, Version: r.Event.Version}
	}
	cases = append(cases, pinCase{"sample", sampleWrites, nil, chunkMeta{storeText: true, now: now}})

	odd := event.Event{
		Op: event.OpUpsert, Tenant: "t\"1", ID: "c\\1", Text: "not stored", HasText: true,
		Metadata: map[string]any{
			"nested": map[string]any{"z": nil, "a": []any{int64(1), 2.0, "x\x00y", true, nil, map[string]any{}}},
			"null":   nil, "big": 1e21, "neg": -1.5e-7, "max": int64(math.MaxInt64), "int": 3, "bad": "bad\xffutf8",
			"strs": []string{"a", "b"}, "i64s": []int64{1, -2}, "fs": []float64{0.5, 3}, "bs": []bool{false},
		},
		Entities: []event.Entity{
			ent("e\"1", "Person", "Zoë <&> 東京 🚀\u2028", map[string]any{
				"int": int64(2), "float": 2.0, "s": "tab\there", "nil": nil, "list": []any{"a", int64(1)}, "empty": []any{},
			}),
			ent("e2", "Place", "only nulls", map[string]any{"gone": nil}),
			ent("e3", "Thing", "", nil),
		},
		Relations: []event.Relation{
			rel("e\"1", "LIVES_IN", "e2", map[string]any{"since": int64(2020), "w": 0.25}),
			rel("e2", "NEAR", "e3", map[string]any{"n": nil}),
			rel("e\"1", "KNOWS", "e3", nil),
		},
		Version: 1 << 40, HasVersion: true,
	}
	oddWrite := pipeline.Write{Key: pipeline.Key{Tenant: odd.Tenant, ID: odd.ID}, Action: pipeline.ActionUpsert,
		Record: &pipeline.Record{Event: odd}, Version: odd.Version, Prior: pipeline.Stored{State: pipeline.Deleted, Version: 7}}
	cases = append(cases, pinCase{"odd", []pipeline.Write{oddWrite}, nil, chunkMeta{storeText: false, now: now}})

	x := ent("x", "Person", "X", map[string]any{"a": int64(1), "b": "two"})
	y := ent("y", "Place", "Y", nil)
	old := upsert("t", "c", 1, ts(1), []event.Entity{x, y}, []event.Relation{rel("x", "LIVES_IN", "y", map[string]any{"p": "1"})})
	other := upsert("t", "d", 1, ts(1), []event.Entity{y}, nil)
	priors := map[pipeline.Key]*chunkGraph{{Tenant: "t", ID: "c"}: graphOf(&old), {Tenant: "t", ID: "d"}: graphOf(&other)}
	bt := &batcher{offset: 40}
	newer := upsert("t", "c", 2, ts(0), []event.Entity{ent("x", "Person", "X2", map[string]any{"a": int64(5)}), ent("z", "Org", "Z", nil)},
		[]event.Relation{rel("x", "WORKS_AT", "z", nil)})
	newer.Metadata = nil
	newer.DocID = ""
	b := bt.batch(newer, deleteEv("t", "d", 3))
	b.Records[1].Src.Timestamp = time.Date(2026, 1, 8, 13, 0, 0, 0, time.FixedZone("X", 3600))
	rewrite := []pipeline.Write{
		{Key: pipeline.Key{Tenant: "t", ID: "c"}, Action: pipeline.ActionUpsert, Record: b.Records[0], Version: 2,
			Prior: pipeline.Stored{State: pipeline.Present, Version: 1}},
		{Key: pipeline.Key{Tenant: "t", ID: "d"}, Action: pipeline.ActionDelete, Record: b.Records[1], Version: 3,
			Prior: pipeline.Stored{State: pipeline.Present, Version: 1}},
		{Key: pipeline.Key{Tenant: "t", ID: "e"}, Action: pipeline.ActionDelete, Record: &pipeline.Record{Src: &kgo.Record{}}, Version: 4,
			Prior: pipeline.Stored{State: pipeline.Deleted, Version: 2}},
		{Key: pipeline.Key{Tenant: "t", ID: "f"}, Action: pipeline.ActionDelete, Record: &pipeline.Record{}, Version: 4,
			Prior: pipeline.Stored{State: pipeline.Deleted, Version: 4}},
	}
	cases = append(cases, pinCase{"rewrite_and_delete", rewrite, priors, chunkMeta{storeText: true, now: now}})
	return cases
}

// TestPlanPinned pins what newPlan makes of the pin cases: the assertions
// and metadata strings stored on chunks (literally, as earlier versions
// wrote them: stored values must not change and old ones must still
// decode), and every row the transaction's statements get, which decide
// the stored graph.
func TestPlanPinned(t *testing.T) {
	t.Parallel()
	cases := pinCases(t)
	if len(cases) != len(pinnedPlans) {
		t.Fatalf("%d pin cases, %d pinned plans", len(cases), len(pinnedPlans))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, ok := pinnedPlans[c.name]
			if !ok {
				t.Fatalf("no pinned plan for %s", c.name)
			}
			p, err := newPlan(c.writes, c.priors, c.meta)
			if err != nil {
				t.Fatal(err)
			}
			got := planText(p)
			if got != want.plan {
				t.Errorf("plan changed\n got:\n%s\nwant:\n%s", got, want.plan)
			}
			var stored []string
			for _, u := range upsertRows(p) {
				props := u["props"].(map[string]any)
				a, _ := props["assertions"].(string)
				m, _ := props["metadata"].(string)
				stored = append(stored, a, m)
			}
			if !slices.Equal(stored, want.stored) {
				t.Errorf("stored strings changed\n got: %q\nwant: %q", stored, want.stored)
			}
			for i := 0; i < len(want.stored); i += 2 {
				g, err := decodeGraph(want.stored[i])
				if err != nil {
					t.Fatalf("pinned assertions %d do not decode: %v", i/2, err)
				}
				if again, err := encodeGraph(g); err != nil || again != want.stored[i] {
					t.Errorf("pinned assertions %d re-encode as %q (%v), want %q", i/2, again, err, want.stored[i])
				}
			}
		})
	}
}

// upsertRows returns the plan's chunk upsert rows as maps.
func upsertRows(p *plan) []map[string]any {
	out := make([]map[string]any, len(p.upserts))
	for i, u := range p.upserts {
		out[i] = u.(map[string]any)
	}
	return out
}

// planText renders every row of p, and its withdrawals, in a fixed order.
func planText(p *plan) string {
	var b strings.Builder
	section := func(name string, rows []any) {
		fmt.Fprintf(&b, "%s:\n", name)
		for _, r := range rows {
			fmt.Fprintf(&b, "  %s\n", canon(r))
		}
	}
	section("deletes", p.deletes)
	section("upserts", p.upserts)
	section("unmarks", p.unmarks)
	section("unmentions", p.unmentions)
	section("entity merges", entityMergeRows(p.entIn))
	section("relation merges", relationMergeRows(p.relIn))
	b.WriteString("entity withdrawals:\n")
	for _, k := range sortedEntKeys(p.entOut) {
		fmt.Fprintf(&b, "  %s %s\n", canon([]string{k.Tenant, k.ID}), canon(*p.entOut[k]))
	}
	b.WriteString("relation withdrawals:\n")
	for _, k := range sortedRelKeys(p.relOut) {
		fmt.Fprintf(&b, "  %s %s\n", canon([]string{k.Tenant, k.From, k.Type, k.To}), canon(*p.relOut[k]))
	}
	return b.String()
}

// canon renders v with its Go types and map keys sorted.
func canon(v any) string {
	switch x := v.(type) {
	case nil:
		return "nil"
	case string:
		return strconv.Quote(x)
	case int64:
		return "int64(" + strconv.FormatInt(x, 10) + ")"
	case int:
		return "int(" + strconv.Itoa(x) + ")"
	case float64:
		return "float64(" + strconv.FormatFloat(x, 'g', -1, 64) + ")"
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return "time(" + x.Format(time.RFC3339Nano) + " " + x.Location().String() + ")"
	case []string:
		parts := make([]string, len(x))
		for i, s := range x {
			parts[i] = strconv.Quote(s)
		}
		if x == nil {
			return "[]string(nil)"
		}
		return "[]string{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = canon(e)
		}
		if x == nil {
			return "[]any(nil)"
		}
		return "[]any{" + strings.Join(parts, ",") + "}"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + canon(x[k])
		}
		return "{" + strings.Join(parts, " ") + "}"
	case withdrawal:
		return "ranks=" + canon(x.ranks) + " chunks=" + canon(x.chunks)
	}
	return fmt.Sprintf("?%T(%v)", v, v)
}

// pinnedPlans holds what the implementation of 2026-11 made of pinCases.
var pinnedPlans = map[string]struct {
	plan   string
	stored []string // per upsert row: assertions, metadata
}{
	"sample": {
		plan: `deletes:
upserts:
  {id:"doc-0001#0" mentions:[]string{"person:amara-okafor","org:initech","place:zurich"} props:{assertions:"{\"rank\":\"9888bfac4670d700doc-0001#0\",\"entities\":[{\"id\":\"person:amara-okafor\",\"type\":\"Person\",\"name\":\"Amara Okafor\",\"props\":{\"board\":true,\"role\":\"CFO\"}},{\"id\":\"org:initech\",\"type\":\"Organization\",\"name\":\"Initech\",\"props\":{\"founded\":1996}},{\"id\":\"place:zurich\",\"type\":\"Place\",\"name\":\"Zürich\",\"props\":{\"country\":\"CH\",\"lat\":47.3769,\"lon\":8.5417}}],\"relations\":[{\"from\":\"person:amara-okafor\",\"type\":\"FOUNDED\",\"to\":\"org:initech\",\"props\":{\"year\":2015}},{\"from\":\"person:amara-okafor\",\"type\":\"LIVES_IN\",\"to\":\"place:zurich\"}]}" correlation_id:"bench/0/0" doc_id:"doc-0001" entities:[]string{"person:amara-okafor","org:initech","place:zurich"} ingested_at:time(2026-01-09T10:11:12.000000013Z UTC) metadata:"{\"lang\":\"en\",\"page\":1,\"public\":true,\"score\":0.489,\"source\":\"email\",\"tags\":[\"email\",\"de\"],\"year\":2016}" source_offset:int64(0) source_partition:int64(0) source_topic:"bench" text:"Amara Okafor founded Initech in 2015. Amara Okafor lives in Zürich. Q3 notes:\n- hiring is on track\n- churn is down El equipo presentó la hoja de ruta para el próximo año. Отчёт был опубликован после проверки аудиторами. Отчёт был опубликован после проверки аудиторами. The board approved the budget for the next fiscal year. Customer satisfaction reached 4.6/5 across 1,200 survey responses." ts:time(2026-01-08T12:00:00.38Z UTC) version:int64(1)} tenant:"pin-d"}
  {id:"doc-0001#0" mentions:[]string{"person:alice-nakamura","org:acme","place:tokyo"} props:{assertions:"{\"rank\":\"9888bfaca6860200doc-0001#0\",\"entities\":[{\"id\":\"person:alice-nakamura\",\"type\":\"Person\",\"name\":\"Alice Nakamura\",\"props\":{\"born\":1980,\"role\":\"CEO\"}},{\"id\":\"org:acme\",\"type\":\"Organization\",\"name\":\"Acme Corp\",\"props\":{\"founded\":2019,\"sectors\":[\"retail\",\"logistics\"]}},{\"id\":\"place:tokyo\",\"type\":\"Place\",\"name\":\"東京\",\"props\":{\"country\":\"JP\",\"lat\":35.6762,\"lon\":139.6503}}],\"relations\":[{\"from\":\"person:alice-nakamura\",\"type\":\"WORKS_AT\",\"to\":\"org:acme\",\"props\":{\"since\":2025,\"title\":\"chief of staff\"}},{\"from\":\"person:alice-nakamura\",\"type\":\"LIVES_IN\",\"to\":\"place:tokyo\"}]}" correlation_id:"bench/0/1" doc_id:"doc-0001" entities:[]string{"person:alice-nakamura","org:acme","place:tokyo"} ingested_at:time(2026-01-09T10:11:12.000000013Z UTC) metadata:"{\"lang\":\"ja\",\"page\":1,\"public\":true,\"score\":0.072,\"source\":\"sharepoint\",\"tags\":[\"slack\",\"ja\"],\"year\":2024}" source_offset:int64(1) source_partition:int64(0) source_topic:"bench" text:"Alice Nakamura works at Acme Corp as chief of staff. Alice Nakamura lives in 東京. Der Umsatz stieg im dritten Quartal deutlich; die Prognose bleibt unverändert. Отчёт был опубликован после проверки аудиторами. Meeting minutes were shared with all participants\tand archived. The board approved the budget for the next fiscal year. El equipo presentó la hoja de ruta para el próximo año." ts:time(2026-01-08T12:00:01.992Z UTC) version:int64(1)} tenant:"pin-c"}
  {id:"doc-0001#1" mentions:[]string{"person:fatima-zahra","org:umbrella","place:krakow"} props:{assertions:"{\"rank\":\"9888bfaccea32c40doc-0001#1\",\"entities\":[{\"id\":\"person:fatima-zahra\",\"type\":\"Person\",\"name\":\"فاطمة الزهراء\",\"props\":{\"role\":\"Analyst\"}},{\"id\":\"org:umbrella\",\"type\":\"Organization\",\"name\":\"Umbrella Europe\",\"props\":{\"founded\":2004,\"rating\":4.5}},{\"id\":\"place:krakow\",\"type\":\"Place\",\"name\":\"Kraków\",\"props\":{\"country\":\"PL\"}}],\"relations\":[{\"from\":\"person:fatima-zahra\",\"type\":\"LIVES_IN\",\"to\":\"place:krakow\"},{\"from\":\"person:fatima-zahra\",\"type\":\"WORKS_AT\",\"to\":\"org:umbrella\",\"props\":{\"since\":2021,\"title\":\"chief of staff\"}}]}" correlation_id:"bench/0/2" doc_id:"doc-0001" entities:[]string{"person:fatima-zahra","org:umbrella","place:krakow"} ingested_at:time(2026-01-09T10:11:12.000000013Z UTC) metadata:"{\"author\":{\"dept\":\"finance\",\"reviewed\":false},\"lang\":\"en\",\"page\":2,\"public\":true,\"score\":0.595,\"source\":\"crm\",\"tags\":[\"slack\",\"es\"],\"year\":2015}" source_offset:int64(2) source_partition:int64(0) source_topic:"bench" text:"فاطمة الزهراء lives in Kraków. فاطمة الزهراء works at Umbrella Europe as chief of staff. El equipo presentó la hoja de ruta para el próximo año. Отчёт был опубликован после проверки аудиторами. The migration moved C:\\data\\archive to the new object store. The board approved the budget for the next fiscal year. 売上高は前年同期比で増加し、新製品の評価も好調です。 売上高は前年同期比で増加し、新製品の評価も好調です。" ts:time(2026-01-08T12:00:02.665Z UTC) version:int64(1)} tenant:"pin-d"}
unmarks:
unmentions:
entity merges:
  {i:int64(0) id:"org:acme" keys:[]string{"founded","sectors"} name:"Acme Corp" props:{founded:int64(2019) sectors:[]any{"retail","logistics"}} rank:"9888bfaca6860200doc-0001#0" ranks:[]string{"9888bfaca6860200doc-0001#0","9888bfaca6860200doc-0001#0"} tenant:"pin-c" type:"Organization" uniform:true vals:[]any{int64(2019),[]any{"retail","logistics"}}}
  {i:int64(1) id:"person:alice-nakamura" keys:[]string{"born","role"} name:"Alice Nakamura" props:{born:int64(1980) role:"CEO"} rank:"9888bfaca6860200doc-0001#0" ranks:[]string{"9888bfaca6860200doc-0001#0","9888bfaca6860200doc-0001#0"} tenant:"pin-c" type:"Person" uniform:true vals:[]any{int64(1980),"CEO"}}
  {i:int64(2) id:"place:tokyo" keys:[]string{"country","lat","lon"} name:"東京" props:{country:"JP" lat:float64(35.6762) lon:float64(139.6503)} rank:"9888bfaca6860200doc-0001#0" ranks:[]string{"9888bfaca6860200doc-0001#0","9888bfaca6860200doc-0001#0","9888bfaca6860200doc-0001#0"} tenant:"pin-c" type:"Place" uniform:true vals:[]any{"JP",float64(35.6762),float64(139.6503)}}
  {i:int64(3) id:"org:initech" keys:[]string{"founded"} name:"Initech" props:{founded:int64(1996)} rank:"9888bfac4670d700doc-0001#0" ranks:[]string{"9888bfac4670d700doc-0001#0"} tenant:"pin-d" type:"Organization" uniform:true vals:[]any{int64(1996)}}
  {i:int64(4) id:"org:umbrella" keys:[]string{"founded","rating"} name:"Umbrella Europe" props:{founded:int64(2004) rating:float64(4.5)} rank:"9888bfaccea32c40doc-0001#1" ranks:[]string{"9888bfaccea32c40doc-0001#1","9888bfaccea32c40doc-0001#1"} tenant:"pin-d" type:"Organization" uniform:true vals:[]any{int64(2004),float64(4.5)}}
  {i:int64(5) id:"person:amara-okafor" keys:[]string{"board","role"} name:"Amara Okafor" props:{board:true role:"CFO"} rank:"9888bfac4670d700doc-0001#0" ranks:[]string{"9888bfac4670d700doc-0001#0","9888bfac4670d700doc-0001#0"} tenant:"pin-d" type:"Person" uniform:true vals:[]any{true,"CFO"}}
  {i:int64(6) id:"person:fatima-zahra" keys:[]string{"role"} name:"فاطمة الزهراء" props:{role:"Analyst"} rank:"9888bfaccea32c40doc-0001#1" ranks:[]string{"9888bfaccea32c40doc-0001#1"} tenant:"pin-d" type:"Person" uniform:true vals:[]any{"Analyst"}}
  {i:int64(7) id:"place:krakow" keys:[]string{"country"} name:"Kraków" props:{country:"PL"} rank:"9888bfaccea32c40doc-0001#1" ranks:[]string{"9888bfaccea32c40doc-0001#1"} tenant:"pin-d" type:"Place" uniform:true vals:[]any{"PL"}}
  {i:int64(8) id:"place:zurich" keys:[]string{"country","lat","lon"} name:"Zürich" props:{country:"CH" lat:float64(47.3769) lon:float64(8.5417)} rank:"9888bfac4670d700doc-0001#0" ranks:[]string{"9888bfac4670d700doc-0001#0","9888bfac4670d700doc-0001#0","9888bfac4670d700doc-0001#0"} tenant:"pin-d" type:"Place" uniform:true vals:[]any{"CH",float64(47.3769),float64(8.5417)}}
relation merges:
  {from:"person:alice-nakamura" i:int64(0) keys:[]string{"since","title"} props:{since:int64(2025) title:"chief of staff"} rank:"9888bfaca6860200doc-0001#0" ranks:[]string{"9888bfaca6860200doc-0001#0","9888bfaca6860200doc-0001#0"} srcs:[]string{"doc-0001#0"} tenant:"pin-c" to:"org:acme" type:"WORKS_AT" uniform:true vals:[]any{int64(2025),"chief of staff"}}
  {from:"person:alice-nakamura" i:int64(1) keys:[]string{} props:{} rank:"9888bfaca6860200doc-0001#0" ranks:[]string{} srcs:[]string{"doc-0001#0"} tenant:"pin-c" to:"place:tokyo" type:"LIVES_IN" uniform:true vals:[]any{}}
  {from:"person:amara-okafor" i:int64(2) keys:[]string{"year"} props:{year:int64(2015)} rank:"9888bfac4670d700doc-0001#0" ranks:[]string{"9888bfac4670d700doc-0001#0"} srcs:[]string{"doc-0001#0"} tenant:"pin-d" to:"org:initech" type:"FOUNDED" uniform:true vals:[]any{int64(2015)}}
  {from:"person:amara-okafor" i:int64(3) keys:[]string{} props:{} rank:"9888bfac4670d700doc-0001#0" ranks:[]string{} srcs:[]string{"doc-0001#0"} tenant:"pin-d" to:"place:zurich" type:"LIVES_IN" uniform:true vals:[]any{}}
  {from:"person:fatima-zahra" i:int64(4) keys:[]string{"since","title"} props:{since:int64(2021) title:"chief of staff"} rank:"9888bfaccea32c40doc-0001#1" ranks:[]string{"9888bfaccea32c40doc-0001#1","9888bfaccea32c40doc-0001#1"} srcs:[]string{"doc-0001#1"} tenant:"pin-d" to:"org:umbrella" type:"WORKS_AT" uniform:true vals:[]any{int64(2021),"chief of staff"}}
  {from:"person:fatima-zahra" i:int64(5) keys:[]string{} props:{} rank:"9888bfaccea32c40doc-0001#1" ranks:[]string{} srcs:[]string{"doc-0001#1"} tenant:"pin-d" to:"place:krakow" type:"LIVES_IN" uniform:true vals:[]any{}}
entity withdrawals:
relation withdrawals:
`,
		stored: []string{
			"{\"rank\":\"9888bfac4670d700doc-0001#0\",\"entities\":[{\"id\":\"person:amara-okafor\",\"type\":\"Person\",\"name\":\"Amara Okafor\",\"props\":{\"board\":true,\"role\":\"CFO\"}},{\"id\":\"org:initech\",\"type\":\"Organization\",\"name\":\"Initech\",\"props\":{\"founded\":1996}},{\"id\":\"place:zurich\",\"type\":\"Place\",\"name\":\"Zürich\",\"props\":{\"country\":\"CH\",\"lat\":47.3769,\"lon\":8.5417}}],\"relations\":[{\"from\":\"person:amara-okafor\",\"type\":\"FOUNDED\",\"to\":\"org:initech\",\"props\":{\"year\":2015}},{\"from\":\"person:amara-okafor\",\"type\":\"LIVES_IN\",\"to\":\"place:zurich\"}]}",
			"{\"lang\":\"en\",\"page\":1,\"public\":true,\"score\":0.489,\"source\":\"email\",\"tags\":[\"email\",\"de\"],\"year\":2016}",
			"{\"rank\":\"9888bfaca6860200doc-0001#0\",\"entities\":[{\"id\":\"person:alice-nakamura\",\"type\":\"Person\",\"name\":\"Alice Nakamura\",\"props\":{\"born\":1980,\"role\":\"CEO\"}},{\"id\":\"org:acme\",\"type\":\"Organization\",\"name\":\"Acme Corp\",\"props\":{\"founded\":2019,\"sectors\":[\"retail\",\"logistics\"]}},{\"id\":\"place:tokyo\",\"type\":\"Place\",\"name\":\"東京\",\"props\":{\"country\":\"JP\",\"lat\":35.6762,\"lon\":139.6503}}],\"relations\":[{\"from\":\"person:alice-nakamura\",\"type\":\"WORKS_AT\",\"to\":\"org:acme\",\"props\":{\"since\":2025,\"title\":\"chief of staff\"}},{\"from\":\"person:alice-nakamura\",\"type\":\"LIVES_IN\",\"to\":\"place:tokyo\"}]}",
			"{\"lang\":\"ja\",\"page\":1,\"public\":true,\"score\":0.072,\"source\":\"sharepoint\",\"tags\":[\"slack\",\"ja\"],\"year\":2024}",
			"{\"rank\":\"9888bfaccea32c40doc-0001#1\",\"entities\":[{\"id\":\"person:fatima-zahra\",\"type\":\"Person\",\"name\":\"فاطمة الزهراء\",\"props\":{\"role\":\"Analyst\"}},{\"id\":\"org:umbrella\",\"type\":\"Organization\",\"name\":\"Umbrella Europe\",\"props\":{\"founded\":2004,\"rating\":4.5}},{\"id\":\"place:krakow\",\"type\":\"Place\",\"name\":\"Kraków\",\"props\":{\"country\":\"PL\"}}],\"relations\":[{\"from\":\"person:fatima-zahra\",\"type\":\"LIVES_IN\",\"to\":\"place:krakow\"},{\"from\":\"person:fatima-zahra\",\"type\":\"WORKS_AT\",\"to\":\"org:umbrella\",\"props\":{\"since\":2021,\"title\":\"chief of staff\"}}]}",
			"{\"author\":{\"dept\":\"finance\",\"reviewed\":false},\"lang\":\"en\",\"page\":2,\"public\":true,\"score\":0.595,\"source\":\"crm\",\"tags\":[\"slack\",\"es\"],\"year\":2015}",
		},
	},
	"odd": {
		plan: `deletes:
upserts:
  {id:"c\\1" mentions:[]string{"e\"1","e2","e3"} props:{assertions:"{\"rank\":\"0000000000000000c\\\\1\",\"entities\":[{\"id\":\"e\\\"1\",\"type\":\"Person\",\"name\":\"Zoë <&> 東京 🚀\u2028\",\"props\":{\"empty\":[],\"float\":2.0,\"int\":2,\"list\":[\"a\",1],\"s\":\"tab\\there\"}},{\"id\":\"e2\",\"type\":\"Place\",\"name\":\"only nulls\"},{\"id\":\"e3\",\"type\":\"Thing\",\"name\":\"\"}],\"relations\":[{\"from\":\"e\\\"1\",\"type\":\"LIVES_IN\",\"to\":\"e2\",\"props\":{\"since\":2020,\"w\":0.25}},{\"from\":\"e2\",\"type\":\"NEAR\",\"to\":\"e3\"},{\"from\":\"e\\\"1\",\"type\":\"KNOWS\",\"to\":\"e3\"}]}" correlation_id:nil doc_id:nil entities:[]string{"e\"1","e2","e3"} ingested_at:time(2026-01-09T10:11:12.000000013Z UTC) metadata:"{\"bad\":\"bad\\ufffdutf8\",\"big\":1e+21,\"bs\":[false],\"fs\":[0.5,3.0],\"i64s\":[1,-2],\"int\":3,\"max\":9223372036854775807,\"neg\":-1.5e-07,\"nested\":{\"a\":[1,2.0,\"x\\u0000y\",true,null,{}],\"z\":null},\"null\":null,\"strs\":[\"a\",\"b\"]}" source_offset:nil source_partition:nil source_topic:nil text:nil ts:nil version:int64(1099511627776)} tenant:"t\"1"}
unmarks:
  {id:"c\\1" tenant:"t\"1"}
unmentions:
entity merges:
  {i:int64(0) id:"e\"1" keys:[]string{"empty","float","int","list","s"} name:"Zoë <&> 東京 🚀\u2028" props:{empty:[]any{} float:float64(2) int:int64(2) list:[]any{"a",int64(1)} s:"tab\there"} rank:"0000000000000000c\\1" ranks:[]string{"0000000000000000c\\1","0000000000000000c\\1","0000000000000000c\\1","0000000000000000c\\1","0000000000000000c\\1"} tenant:"t\"1" type:"Person" uniform:true vals:[]any{[]any{},float64(2),int64(2),[]any{"a",int64(1)},"tab\there"}}
  {i:int64(1) id:"e2" keys:[]string{} name:"only nulls" props:{} rank:"0000000000000000c\\1" ranks:[]string{} tenant:"t\"1" type:"Place" uniform:true vals:[]any{}}
  {i:int64(2) id:"e3" keys:[]string{} name:"" props:{} rank:"0000000000000000c\\1" ranks:[]string{} tenant:"t\"1" type:"Thing" uniform:true vals:[]any{}}
relation merges:
  {from:"e\"1" i:int64(0) keys:[]string{"since","w"} props:{since:int64(2020) w:float64(0.25)} rank:"0000000000000000c\\1" ranks:[]string{"0000000000000000c\\1","0000000000000000c\\1"} srcs:[]string{"c\\1"} tenant:"t\"1" to:"e2" type:"LIVES_IN" uniform:true vals:[]any{int64(2020),float64(0.25)}}
  {from:"e\"1" i:int64(1) keys:[]string{} props:{} rank:"0000000000000000c\\1" ranks:[]string{} srcs:[]string{"c\\1"} tenant:"t\"1" to:"e3" type:"KNOWS" uniform:true vals:[]any{}}
  {from:"e2" i:int64(2) keys:[]string{} props:{} rank:"0000000000000000c\\1" ranks:[]string{} srcs:[]string{"c\\1"} tenant:"t\"1" to:"e3" type:"NEAR" uniform:true vals:[]any{}}
entity withdrawals:
relation withdrawals:
`,
		stored: []string{
			"{\"rank\":\"0000000000000000c\\\\1\",\"entities\":[{\"id\":\"e\\\"1\",\"type\":\"Person\",\"name\":\"Zoë <&> 東京 🚀\u2028\",\"props\":{\"empty\":[],\"float\":2.0,\"int\":2,\"list\":[\"a\",1],\"s\":\"tab\\there\"}},{\"id\":\"e2\",\"type\":\"Place\",\"name\":\"only nulls\"},{\"id\":\"e3\",\"type\":\"Thing\",\"name\":\"\"}],\"relations\":[{\"from\":\"e\\\"1\",\"type\":\"LIVES_IN\",\"to\":\"e2\",\"props\":{\"since\":2020,\"w\":0.25}},{\"from\":\"e2\",\"type\":\"NEAR\",\"to\":\"e3\"},{\"from\":\"e\\\"1\",\"type\":\"KNOWS\",\"to\":\"e3\"}]}",
			"{\"bad\":\"bad\\ufffdutf8\",\"big\":1e+21,\"bs\":[false],\"fs\":[0.5,3.0],\"i64s\":[1,-2],\"int\":3,\"max\":9223372036854775807,\"neg\":-1.5e-07,\"nested\":{\"a\":[1,2.0,\"x\\u0000y\",true,null,{}],\"z\":null},\"null\":null,\"strs\":[\"a\",\"b\"]}",
		},
	},
	"rewrite_and_delete": {
		plan: `deletes:
  {deleted_at:time(2026-01-08T12:00:00Z UTC) id:"d" tenant:"t" version:int64(3)}
  {id:"e" tenant:"t" version:int64(4)}
upserts:
  {id:"c" mentions:[]string{"z"} props:{assertions:"{\"rank\":\"9888bfac2fca8000c\",\"entities\":[{\"id\":\"x\",\"type\":\"Person\",\"name\":\"X2\",\"props\":{\"a\":5}},{\"id\":\"z\",\"type\":\"Org\",\"name\":\"Z\"}],\"relations\":[{\"from\":\"x\",\"type\":\"WORKS_AT\",\"to\":\"z\"}]}" correlation_id:"corr-40" doc_id:nil entities:[]string{"x","z"} ingested_at:time(2026-01-09T10:11:12.000000013Z UTC) metadata:nil source_offset:int64(40) source_partition:int64(0) source_topic:"events" text:"text of c" ts:time(2026-01-08T12:00:00Z UTC) version:int64(2)} tenant:"t"}
unmarks:
unmentions:
  {chunk:"c" entity:"y" tenant:"t"}
entity merges:
  {i:int64(0) id:"x" keys:[]string{"a"} name:"X2" props:{a:int64(5)} rank:"9888bfac2fca8000c" ranks:[]string{"9888bfac2fca8000c"} tenant:"t" type:"Person" uniform:true vals:[]any{int64(5)}}
  {i:int64(1) id:"z" keys:[]string{} name:"Z" props:{} rank:"9888bfac2fca8000c" ranks:[]string{} tenant:"t" type:"Org" uniform:true vals:[]any{}}
relation merges:
  {from:"x" i:int64(0) keys:[]string{} props:{} rank:"9888bfac2fca8000c" ranks:[]string{} srcs:[]string{"c"} tenant:"t" to:"z" type:"WORKS_AT" uniform:true vals:[]any{}}
entity withdrawals:
  []string{"t","x"} ranks=[]string{"9888bfac6b654a00c"} chunks=[]string{"c"}
  []string{"t","y"} ranks=[]string{"9888bfac6b654a00c","9888bfac6b654a00d"} chunks=[]string{"c","d"}
relation withdrawals:
  []string{"t","x","LIVES_IN","y"} ranks=[]string{"9888bfac6b654a00c"} chunks=[]string{"c"}
`,
		stored: []string{
			"{\"rank\":\"9888bfac2fca8000c\",\"entities\":[{\"id\":\"x\",\"type\":\"Person\",\"name\":\"X2\",\"props\":{\"a\":5}},{\"id\":\"z\",\"type\":\"Org\",\"name\":\"Z\"}],\"relations\":[{\"from\":\"x\",\"type\":\"WORKS_AT\",\"to\":\"z\"}]}",
			"",
		},
	},
}

// TestMergeAllMatchesRule checks mergeAll against the rule spelled out
// plainly (sort by rank, later assertions overwrite earlier ones, the last
// one names the element) on random sets of assertions, small and large,
// with equal ranks among them.
func TestMergeAllMatchesRule(t *testing.T) {
	t.Parallel()
	rule := func(as []ranked) merged {
		var m merged
		if len(as) == 0 {
			return m
		}
		sorted := slices.Clone(as)
		slices.SortStableFunc(sorted, func(a, b ranked) int { return strings.Compare(a.rank, b.rank) })
		vals, ranks := map[string]any{}, map[string]string{}
		for _, a := range sorted {
			for k, v := range a.props {
				vals[k], ranks[k] = v, a.rank
			}
		}
		top := sorted[len(sorted)-1]
		m.rank, m.name, m.typ = top.rank, top.name, top.typ
		m.keys = []string{}
		for k := range vals {
			m.keys = append(m.keys, k)
		}
		slices.Sort(m.keys)
		for _, k := range m.keys {
			m.vals = append(m.vals, vals[k])
			m.ranks = append(m.ranks, ranks[k])
		}
		return m
	}
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 300 {
		as := make([]ranked, 1+r.IntN(1+n%9))
		for i := range as {
			as[i] = ranked{rank: fmt.Sprint(r.IntN(4)), name: fmt.Sprint("n", i), typ: fmt.Sprint("T", i)}
			if r.IntN(4) > 0 {
				as[i].props = map[string]any{}
				keys := 10
				if n%5 == 0 {
					keys = 40 // more keys than mergeAll tracks without a map
				}
				for range r.IntN(2 + keys/2) {
					as[i].props[fmt.Sprint("k", r.IntN(keys))] = int64(i)
				}
			}
		}
		got, want := mergeAll(as), rule(as)
		got.single = nil
		if got.rank != want.rank || got.name != want.name || got.typ != want.typ ||
			!slices.Equal(got.keys, want.keys) || !slices.Equal(got.vals, want.vals) || !slices.Equal(got.ranks, want.ranks) {
			t.Fatalf("merge of %+v\n got %+v\nwant %+v", as, got, want)
		}
		if props := got.propMap(); len(props) != len(want.keys) {
			t.Fatalf("props %v for keys %v", props, want.keys)
		}
	}
}
