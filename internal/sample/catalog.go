package sample

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"sync"
)

// entityDef is one entity of the catalog every tenant draws from. The same
// id under two tenants is two entities: the catalog is shared, the graph is
// not.
type entityDef struct {
	id, typ, name string
	props         []kv // stable per entity, so chunks never disagree about them
}

// kv is an ordered JSON member; values are string, int64, float64, bool or
// a slice of one of those.
type kv struct {
	k string
	v any
}

const (
	tPerson  = "Person"
	tOrg     = "Organization"
	tPlace   = "Place"
	tProduct = "Product"
)

var catalog = []entityDef{
	{"person:alice-nakamura", tPerson, "Alice Nakamura", []kv{{"role", "CEO"}, {"born", int64(1980)}}},
	{"person:zoe-dubois", tPerson, "Zoë Dubois", []kv{{"role", "CTO"}, {"languages", []string{"fr", "en"}}}},
	{"person:jurgen-muller", tPerson, "Jürgen Müller", []kv{{"role", "Founder"}, {"born", int64(1971)}}},
	{"person:li-wei", tPerson, "李伟", []kv{{"role", "Engineer"}}},
	{"person:olafur-arnalds", tPerson, "Ólafur Arnalds", []kv{{"role", "Designer"}}},
	{"person:amara-okafor", tPerson, "Amara Okafor", []kv{{"role", "CFO"}, {"board", true}}},
	{"person:sofia-garcia", tPerson, "Sofía García", []kv{{"role", "Counsel"}}},
	{"person:dmitri-ivanov", tPerson, "Дмитрий Иванов", []kv{{"role", "Researcher"}}},
	{"person:fatima-zahra", tPerson, "فاطمة الزهراء", []kv{{"role", "Analyst"}}},
	{"person:kenji-sato", tPerson, "佐藤健二", []kv{{"role", "Sales"}, {"born", int64(1988)}}},
	{"org:acme", tOrg, "Acme Corp", []kv{{"founded", int64(2019)}, {"sectors", []string{"retail", "logistics"}}}},
	{"org:muller-gmbh", tOrg, "Müller GmbH", []kv{{"founded", int64(1998)}, {"employees", int64(420)}}},
	{"org:globex", tOrg, "Globex", []kv{{"founded", int64(1989)}, {"public", true}}},
	{"org:initech", tOrg, "Initech", []kv{{"founded", int64(1996)}}},
	{"org:umbrella", tOrg, "Umbrella Europe", []kv{{"founded", int64(2004)}, {"rating", 4.5}}},
	{"org:lumiere", tOrg, "Société Lumière", []kv{{"founded", int64(2011)}}},
	{"org:tokyo-robotics", tOrg, "東京ロボティクス株式会社", []kv{{"founded", int64(2015)}, {"sectors", []string{"robotics"}}}},
	{"org:nordlys", tOrg, "Nordlys AS", []kv{{"founded", int64(2008)}}},
	{"place:tokyo", tPlace, "東京", []kv{{"country", "JP"}, {"lat", 35.6762}, {"lon", 139.6503}}},
	{"place:zurich", tPlace, "Zürich", []kv{{"country", "CH"}, {"lat", 47.3769}, {"lon", 8.5417}}},
	{"place:sao-paulo", tPlace, "São Paulo", []kv{{"country", "BR"}, {"lat", -23.5558}, {"lon", -46.6396}}},
	{"place:krakow", tPlace, "Kraków", []kv{{"country", "PL"}}},
	{"place:reykjavik", tPlace, "Reykjavík", []kv{{"country", "IS"}}},
	{"place:berlin", tPlace, "Berlin", []kv{{"country", "DE"}, {"lat", 52.52}, {"lon", 13.405}}},
	{"place:lagos", tPlace, "Lagos", []kv{{"country", "NG"}}},
	{"place:montreal", tPlace, "Montréal", []kv{{"country", "CA"}}},
	{"product:rocket-skates", tProduct, "Rocket Skates 🚀", []kv{{"price", 149.99}, {"tags", []string{"outdoor", "speed"}}}},
	{"product:anvil", tProduct, "Anvil™ Pro", []kv{{"price", 89.5}}},
	{"product:robo-arm", tProduct, "ロボアーム R2", []kv{{"axes", int64(6)}}},
	{"product:tps-report", tProduct, "TPS Report Suite", []kv{{"seats", []int64{5, 25, 100}}}},
}

// byType indexes the catalog by entity type.
var byType = func() map[string][]int {
	m := map[string][]int{}
	for i, e := range catalog {
		m[e.typ] = append(m[e.typ], i)
	}
	return m
}()

// typeCycle is the order in which an event's entities take their types, so
// that even small events can hold the common relations.
var typeCycle = []string{tPerson, tOrg, tPlace, tProduct}

// relDef is a relation type between two entity types, with the sentence
// that states it.
type relDef struct {
	typ, from, to string
	sentence      func(from, to string, props []kv) string
}

var relations = []relDef{
	{"FOUNDED", tPerson, tOrg, func(a, b string, p []kv) string { return a + " founded " + b + " in " + itoa(p[0].v.(int64)) + "." }},
	{"WORKS_AT", tPerson, tOrg, func(a, b string, p []kv) string { return a + " works at " + b + " as " + p[0].v.(string) + "." }},
	{"LIVES_IN", tPerson, tPlace, func(a, b string, _ []kv) string { return a + " lives in " + b + "." }},
	{"LOCATED_IN", tOrg, tPlace, func(a, b string, _ []kv) string { return b + " is where " + a + " has its headquarters." }},
	{"MAKES", tOrg, tProduct, func(a, b string, _ []kv) string { return a + " makes “" + b + "”." }},
	{"PARTNERS_WITH", tOrg, tOrg, func(a, b string, p []kv) string {
		return a + " signed a partnership with " + b + " (since " + itoa(p[0].v.(int64)) + ")."
	}},
}

// relProps returns the props of a relation, a function of its endpoints so
// every chunk asserting it says the same.
func relProps(typ, from, to string) []kv {
	h := hash64(typ + "|" + from + "|" + to)
	switch typ {
	case "FOUNDED":
		return []kv{{"year", int64(1990 + h%35)}}
	case "WORKS_AT":
		titles := []string{"engineer", "head of sales", "analyst", "chief of staff"}
		return []kv{{"title", titles[h%uint64(len(titles))]}, {"since", int64(2010 + h%16)}}
	case "PARTNERS_WITH":
		return []kv{{"since", int64(2015 + h%11)}, {"confidence", float64(h%100) / 100}}
	}
	return nil
}

// fillers pad the text: several languages, punctuation that JSON escapes.
var fillers = []string{
	"The board approved the budget for the next fiscal year.",
	"Revenue grew 12 % quarter over quarter, driven by the \"Premium\" tier.",
	"Der Umsatz stieg im dritten Quartal deutlich; die Prognose bleibt unverändert.",
	"Les résultats sont conformes aux prévisions et la trésorerie reste solide.",
	"売上高は前年同期比で増加し、新製品の評価も好調です。",
	"El equipo presentó la hoja de ruta para el próximo año.",
	"Отчёт был опубликован после проверки аудиторами.",
	"Customer satisfaction reached 4.6/5 across 1,200 survey responses.",
	"The migration moved C:\\data\\archive to the new object store.",
	"Q3 notes:\n- hiring is on track\n- churn is down",
	"Meeting minutes were shared with all participants\tand archived.",
	"A follow-up review is planned for next month 📅.",
}

var (
	sources = []string{"crm", "wiki", "email", "slack", "sharepoint"}
	langs   = []string{"en", "de", "fr", "ja", "es"}
	depts   = []string{"sales", "research", "legal", "finance"}
)

// bases holds one unit vector per catalog entity for each dimension in use:
// a chunk's vector is the normalized sum of its entities' bases plus noise,
// so chunks about the same entities lie close together.
var bases sync.Map // dims -> [][]float64

func entityBases(dims int) [][]float64 {
	if v, ok := bases.Load(dims); ok {
		return v.([][]float64)
	}
	out := make([][]float64, len(catalog))
	for i, e := range catalog {
		h := hash64(e.id)
		r := rand.New(rand.NewPCG(h, h^0x9e3779b97f4a7c15))
		v := make([]float64, dims)
		var norm float64
		for j := range v {
			v[j] = r.NormFloat64()
			norm += v[j] * v[j]
		}
		norm = math.Sqrt(norm)
		for j := range v {
			v[j] /= norm
		}
		out[i] = v
	}
	v, _ := bases.LoadOrStore(dims, out)
	return v.([][]float64)
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
