package e2e

// Reading the Grafana dashboard: its shape, and its PromQL expressions.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

const dashboardPath = "docs/grafana/currents-connect.json"

// gPanel is the part of a Grafana panel the checks read. Rows hold their
// panels when collapsed.
type gPanel struct {
	ID         *int      `json:"id"`
	Type       string    `json:"type"`
	Title      string    `json:"title"`
	Datasource *gDatasrc `json:"datasource"`
	Targets    []gTarget `json:"targets"`
	Panels     []gPanel  `json:"panels"`
	GridPos    *gGridPos `json:"gridPos"`
}

type gGridPos struct{ H, W, X, Y int }

type gDatasrc struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type gTarget struct {
	RefID      string    `json:"refId"`
	Expr       string    `json:"expr"`
	Datasource *gDatasrc `json:"datasource"`
}

type gVariable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Datasource *gDatasrc       `json:"datasource"`
}

type gDashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int      `json:"schemaVersion"`
	Title         string   `json:"title"`
	UID           string   `json:"uid"`
	Panels        []gPanel `json:"panels"`
	Templating    struct {
		List []gVariable `json:"list"`
	} `json:"templating"`
}

// dashQuery is one PromQL expression of the dashboard and where it is.
type dashQuery struct {
	where string // `timeseries panel 14 "Segment retries per second" target A`
	expr  string
	panel bool   // a panel's target, not a variable's query
	row   string // the title of the row the panel is under ("" for none)
}

// loadDashboard parses the dashboard and checks its shape: what Grafana needs
// to import it and what makes every panel show something. It returns every
// PromQL expression, panel targets and variable queries alike.
func loadDashboard(t *testing.T, data []byte) []dashQuery {
	t.Helper()
	if !json.Valid(data) {
		var v any
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, json.Unmarshal(data, &v))
	}
	var d gDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard title %q, uid %q, schemaVersion %d: want a title, a uid and schemaVersion >= 36", d.Title, d.UID, d.SchemaVersion)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs %+v: want one Prometheus data source input named DS_PROMETHEUS", d.Inputs)
	}
	checkDS := func(where string, ds *gDatasrc) {
		if ds == nil || ds.Type != "prometheus" || ds.UID != "${DS_PROMETHEUS}" {
			t.Errorf("%s: data source %+v, want prometheus ${DS_PROMETHEUS}", where, ds)
		}
	}

	var queries []dashQuery
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		checkDS("variable "+v.Name, v.Datasource)
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			if err := json.Unmarshal(v.Query, &q.Query); err != nil {
				t.Errorf("variable %s: query is neither a string nor an object: %s", v.Name, v.Query)
			}
		}
		expr, ok := variableQueryExpr(q.Query)
		if !ok {
			t.Errorf("variable %s: query %q is not label_values(selector, label) or query_result(expr)", v.Name, q.Query)
			continue
		}
		queries = append(queries, dashQuery{"variable " + v.Name, expr, false, ""})
	}
	for _, name := range []string{"DS_PROMETHEUS", "job", "instance"} {
		if !vars[name] {
			t.Errorf("no %s variable in templating", name)
		}
	}

	ids := map[int]string{}
	// row is the row a panel is under: the last one before it, or the
	// collapsed one that holds it.
	var walk func(ps []gPanel, row string)
	walk = func(ps []gPanel, row string) {
		for _, p := range ps {
			where := fmt.Sprintf("%s panel %q", p.Type, p.Title)
			if p.ID == nil {
				t.Errorf("%s has no id", where)
			} else {
				where = fmt.Sprintf("%s panel %d %q", p.Type, *p.ID, p.Title)
				if other, dup := ids[*p.ID]; dup {
					t.Errorf("%s reuses the id of %s", where, other)
				}
				ids[*p.ID] = where
			}
			if strings.TrimSpace(p.Title) == "" {
				t.Errorf("%s has no title", where)
			}
			if p.GridPos == nil || p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v is not a place on the 24-column grid", where, p.GridPos)
			}
			if p.Type == "row" {
				// A row is a heading: its own panels carry the queries.
				if len(p.Targets) != 0 {
					t.Errorf("%s: a row has no queries", where)
				}
				walk(p.Panels, p.Title)
				row = p.Title
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s has no target", where)
			}
			checkDS(where, p.Datasource)
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				tw := fmt.Sprintf("%s target %s", where, tg.RefID)
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("%s: refId missing or repeated", tw)
				}
				refs[tg.RefID] = true
				checkDS(tw, tg.Datasource)
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s has no expr", tw)
					continue
				}
				queries = append(queries, dashQuery{tw, tg.Expr, true, row})
			}
		}
	}
	walk(d.Panels, "")
	if len(ids) == 0 {
		t.Fatalf("%s has no panels", dashboardPath)
	}
	return queries
}

var grafanaLabelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.*?)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
var grafanaQueryResultRE = regexp.MustCompile(`^\s*query_result\(\s*(.*)\s*\)\s*$`)

// variableQueryExpr returns the PromQL inside a Grafana Prometheus variable
// query: the selector of label_values(selector, label), the expression of
// query_result(expr).
func variableQueryExpr(q string) (string, bool) {
	if m := grafanaLabelValuesRE.FindStringSubmatch(q); m != nil {
		return m[1], true
	}
	if m := grafanaQueryResultRE.FindStringSubmatch(q); m != nil {
		return m[1], true
	}
	return "", false
}
