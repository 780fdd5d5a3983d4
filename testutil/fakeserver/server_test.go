package fakeserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptrace"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEmptyLog(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
		for _, q := range [][]string{nil, {"start_revision", "0"}, {"start_revision", "5", "limit", "1000"}} {
			p := c.page(q...)
			if len(p.Data) != 0 || str(p.CurrentRevision) != "0" || str(p.CompactRevision) != "0" || str(p.Ec) != "0" || p.Error != nil {
				t.Errorf("query %v: got %+v", q, p)
			}
			if p.Data == nil {
				t.Errorf("query %v: data is null, want []", q)
			}
		}
	})
}

func TestLogin(t *testing.T) {
	forEachTransport(t, Config{Username: "root", Password: "s3cret", Token: "tok-123"}, func(t *testing.T, s *Server, c *client) {
		json := map[string]string{"Content-Type": "application/json"}
		r := c.do(context.Background(), "POST", LoginPath, `{"username":"root","password":"s3cret","source":"LOCAL"}`, json)
		if r.err != nil || r.resp.StatusCode != 200 {
			t.Fatalf("login: %v %v", r.err, r.body)
		}
		checkHeaders(t, r, contentJSON)
		var ok struct {
			Data struct {
				Token *string `json:"token"`
			} `json:"data"`
		}
		decodeStrict(t, r.body, &ok)
		if str(ok.Data.Token) != "tok-123" || s.Token() != "tok-123" {
			t.Errorf("token = %s", str(ok.Data.Token))
		}

		for _, body := range []string{
			`{"username":"root","password":"wrong","source":"LOCAL"}`,
			`{"username":"admin","password":"admin"}`,
			`{"username":"root"}`,
			`not json`,
			``,
		} {
			r := c.do(context.Background(), "POST", LoginPath, body, json)
			e := checkError(t, r, 400, LoginPath)
			if e.Code == nil || *e.Code == "" {
				t.Errorf("login %q: no code in %s", body, r.body)
			}
		}
		r = c.do(context.Background(), "GET", LoginPath, "", nil)
		if r.err != nil || r.resp.StatusCode != 404 || string(r.body) != "Cannot GET "+LoginPath {
			t.Errorf("GET login: %v %v %q", r.err, r.resp.StatusCode, r.body)
		}
		if st := s.Stats(); st.Logins != 6 || st.StatusCodes[400] != 5 || st.StatusCodes[200] != 1 || st.Requests != 7 {
			t.Errorf("stats = %+v", st)
		}
	})
}

func TestRandomToken(t *testing.T) {
	a, b := New(Config{}), New(Config{})
	defer a.Close()
	defer b.Close()
	if a.Token() == "" || a.Token() == b.Token() {
		t.Errorf("tokens %q and %q, want random and distinct", a.Token(), b.Token())
	}
	if a.Username() != "admin" || a.Password() != "admin" {
		t.Errorf("default credentials %q/%q", a.Username(), a.Password())
	}
}

func TestAuth(t *testing.T) {
	const tok = "tok"
	basic := basicAuth(DefaultAPIUsername, DefaultAPIPassword)
	bad := []map[string]string{nil, {"Authorization": "Bearer tok"}, {"Authorization": "tok2"}, {"Authorization": ""},
		{"Authorization": basicAuth("watcher", "wrong")}, {"Authorization": basicAuth("admin", "admin")}, {"Authorization": "Basic !!"}}
	for _, tc := range []struct {
		mode AuthMode
		ok   []string // accepted Authorization headers
	}{
		{AuthBasic, []string{basic}},
		{AuthToken, []string{tok}},
		{AuthEither, []string{basic, tok}},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			forEachTransport(t, Config{Token: tok, ChangesAuth: tc.mode}, func(t *testing.T, s *Server, c *client) {
				if s.ChangesAuth() != tc.mode || s.APIUsername() != DefaultAPIUsername || s.APIPassword() != DefaultAPIPassword {
					t.Fatalf("mode %v, API credentials %q/%q", s.ChangesAuth(), s.APIUsername(), s.APIPassword())
				}
				refused := bad
				for _, h := range []string{basic, tok} {
					if !slices.Contains(tc.ok, h) {
						refused = append(refused, map[string]string{"Authorization": h})
					}
				}
				for _, h := range refused {
					checkError(t, c.do(context.Background(), "GET", ResourceChangesPath, "", h), 401, ResourceChangesPath)
				}
				for _, h := range tc.ok {
					r := c.do(context.Background(), "GET", ResourceChangesPath, "", map[string]string{"Authorization": h})
					if r.err != nil || r.resp.StatusCode != 200 {
						t.Errorf("%q refused: %v %s", h, r.err, r.body)
					}
				}
				// Other routes take the token, whatever the mode.
				checkError(t, c.do(context.Background(), "POST", ListPath(TypeVM), "", map[string]string{"Authorization": basic}), 401, ListPath(TypeVM))
				if r := c.do(context.Background(), "POST", ListPath(TypeVM), "", map[string]string{"Authorization": tok}); r.err != nil || r.resp.StatusCode != 200 {
					t.Errorf("list with the token: %v %s", r.err, r.body)
				}
				if got := s.Stats().StatusCodes; got[401] != len(refused)+1 || got[200] != len(tc.ok)+1 {
					t.Errorf("status codes %v", got)
				}
				reqs := s.Requests()
				if len(reqs) != len(refused)+len(tc.ok) || reqs[0].Auth != "" || reqs[1].Auth != "token" || reqs[4].Auth != "basic" {
					t.Errorf("recorded auth: %+v", reqs)
				}
				for _, r := range reqs {
					if r.Auth != "" && r.Auth != "basic" && r.Auth != "token" {
						t.Errorf("recorded auth %q", r.Auth)
					}
				}
			})
		})
	}
	t.Run("custom", func(t *testing.T) {
		forEachTransport(t, Config{APIUsername: "api", APIPassword: "p:w"}, func(t *testing.T, s *Server, c *client) {
			if s.APIUsername() != "api" || s.APIPassword() != "p:w" {
				t.Fatalf("API credentials %q/%q", s.APIUsername(), s.APIPassword())
			}
			c.page()
			s.SetChangesAuth(AuthToken)
			checkError(t, c.changes(), 401, ResourceChangesPath)
			c.apiUser = ""
			c.page()
			s.SetChangesAuth(AuthMode(42)) // unknown: Basic
			if s.ChangesAuth() != AuthBasic {
				t.Errorf("mode %v", s.ChangesAuth())
			}
			checkError(t, c.changes(), 401, ResourceChangesPath)
		})
	})
	forEachTransport(t, Config{DisableAuth: true}, func(t *testing.T, s *Server, c *client) {
		for _, path := range []string{ResourceChangesPath, ListPath(TypeHost)} {
			method := "GET"
			if path != ResourceChangesPath {
				method = "POST"
			}
			r := c.do(context.Background(), method, path, "", nil)
			if r.err != nil || r.resp.StatusCode != 200 {
				t.Errorf("no auth %s: %v %s", path, r.err, r.body)
			}
		}
	})
}

func TestRequiredHeaders(t *testing.T) {
	cfg := Config{DisableAuth: true, RequiredHeaders: http.Header{"X-Bypass-Whitelist": {"true"}, "X-Present": nil}}
	forEachTransport(t, cfg, func(t *testing.T, s *Server, c *client) {
		both := map[string]string{"x-bypass-whitelist": "true", "X-Present": "anything"}
		for _, rt := range []struct{ method, path, body string }{
			{"GET", ResourceChangesPath, ""},
			{"POST", LoginPath, `{"username":"admin","password":"admin"}`},
			{"POST", ListPath(TypeVM), "{}"},
			{"GET", BasePath + "/nothing", ""},
		} {
			for _, tc := range []struct {
				h    map[string]string
				want string // in the message
			}{
				{nil, `"x-bypass-whitelist: true"`},
				{map[string]string{"X-Bypass-Whitelist": "false", "X-Present": ""}, `"x-bypass-whitelist" must be "true"`},
				{map[string]string{"X-Bypass-Whitelist": "true"}, `"x-present"`},
			} {
				e := checkError(t, c.do(context.Background(), rt.method, rt.path, rt.body, tc.h), 403, rt.path)
				if !strings.Contains(str(e.Message), tc.want) {
					t.Errorf("%s %v: message %q, want %s", rt.path, tc.h, str(e.Message), tc.want)
				}
			}
			r := c.do(context.Background(), rt.method, rt.path, rt.body, both)
			if want := map[string]int{LoginPath: 200, ResourceChangesPath: 200, ListPath(TypeVM): 200}[rt.path]; r.err != nil || (want != 0 && r.resp.StatusCode != want) || r.resp.StatusCode == 403 {
				t.Errorf("%s with the headers: %v %s", rt.path, r.err, r.body)
			}
		}
		if reqs := s.Requests(); len(reqs) != 4 || reqs[0].Status != 403 || reqs[3].Status != 200 {
			t.Errorf("requests %+v", reqs)
		}
		s.SetRequiredHeaders(nil)
		if r := c.changes(); r.resp.StatusCode != 200 {
			t.Errorf("after SetRequiredHeaders(nil): %d", r.resp.StatusCode)
		}
	})
}

func TestLimitValidation(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
		appendN(s, 1500)
		for _, bad := range []string{"0", "1001", "-1", "abc", "1.5", "+5", " 5", "1e2", "99999999999999999999"} {
			e := checkError(t, c.changes("start_revision", "0", "limit", bad), 400, ResourceChangesPath)
			if !strings.Contains(str(e.Message), "limit") {
				t.Errorf("limit %q: message %q", bad, str(e.Message))
			}
		}
		for limit, want := range map[string]int{"": DefaultLimit, "1": 1, "1000": 1000, "007": 7} {
			if got := len(c.page("start_revision", "0", "limit", limit).Data); got != want {
				t.Errorf("limit %q: %d events, want %d", limit, got, want)
			}
		}
	})
}

func TestStartRevisionValidation(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
		appendN(s, 10)
		for _, bad := range []string{"abc", "-1", "1.0", "0x10", "12a", " 1", "1e3"} {
			e := checkError(t, c.changes("start_revision", bad), 400, ResourceChangesPath)
			if !strings.Contains(str(e.Message), "start_revision") {
				t.Errorf("start_revision %q: message %q", bad, str(e.Message))
			}
		}
		if p := c.page("start_revision", "0005"); !slices.Equal(revs(p), []string{"6", "7", "8", "9", "10"}) {
			t.Errorf("leading zeros: %v", revs(p))
		}
		// Larger than a uint64: valid, above everything.
		for _, huge := range []string{"18446744073709551616", strings.Repeat("9", 300)} {
			if p := c.page("start_revision", huge); len(p.Data) != 0 || str(p.CurrentRevision) != "10" {
				t.Errorf("start %s: %+v", huge[:10], p)
			}
		}
		if p := c.page("start_revision", "18446744073709551615"); len(p.Data) != 0 {
			t.Errorf("max uint64: %v", revs(p))
		}
	})
}

func TestPaging(t *testing.T) {
	forEachTransport(t, Config{Seed: 3}, func(t *testing.T, s *Server, c *client) {
		head := s.Generate(2500)
		want := s.Events(0)
		var got []wireEvent
		pos := "0"
		for {
			p := c.page("start_revision", pos, "limit", "1000")
			if str(p.CurrentRevision) != "2500" || str(p.CompactRevision) != "0" {
				t.Fatalf("revisions %s/%s", str(p.CurrentRevision), str(p.CompactRevision))
			}
			if len(p.Data) == 0 {
				break
			}
			got = append(got, p.Data...)
			pos = *p.Data[len(p.Data)-1].Revision
		}
		if head != 2500 || len(got) != len(want) {
			t.Fatalf("head %d, got %d events, want %d", head, len(got), len(want))
		}
		for i, w := range want {
			checkWireEvent(t, got[i], w)
		}
	})
}

// checkWireEvent compares a decoded event with the log's.
func checkWireEvent(t *testing.T, g wireEvent, w Event) {
	t.Helper()
	optional := func(s string) string {
		if s == "" {
			return "<nil>"
		}
		return s
	}
	if str(g.Revision) != strconv.FormatUint(w.Revision, 10) ||
		str(g.PrevRevision) != optional(strconv.FormatUint(w.PrevRevision, 10)) && w.PrevRevision != 0 ||
		w.PrevRevision == 0 && g.PrevRevision != nil ||
		str(g.Action) != w.Action || str(g.ResourceType) != w.ResourceType || str(g.ResourceID) != w.ResourceID ||
		str(g.NewValue) != optional(w.NewValue) || str(g.OldValue) != optional(w.OldValue) ||
		str(g.CreatedAt) != w.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z") {
		t.Fatalf("event mismatch:\n got  %+v\n want %+v", g, w)
	}
}

func TestPrevRevisionAndCreatedAt(t *testing.T) {
	base := time.Date(2025, 3, 4, 5, 6, 7, 891_234_567, time.FixedZone("CST", 8*3600))
	now := base
	s := New(Config{Now: func() time.Time { return now }})
	defer s.Close()
	s.Append(Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "a", NewValue: "{}"})
	now = base.Add(-time.Hour) // a clock going backwards does not reorder created_at
	s.Append(Event{Action: ActionDelete, ResourceType: TypeVM, ResourceID: "a", OldValue: "{}"})
	explicit := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Append(Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "b", NewValue: "{}", CreatedAt: explicit})
	// prev_revision is the previous change of the same resource: type and id.
	s.Append(
		Event{Action: ActionInsert, ResourceType: TypeVM, ResourceID: "a", NewValue: "{}"},   // 4: first change since its delete
		Event{Action: ActionInsert, ResourceType: TypeHost, ResourceID: "a", NewValue: "{}"}, // 5: another type
		Event{Action: ActionUpdate, ResourceType: TypeVM, ResourceID: "b", NewValue: "{}"},   // 6
		Event{Action: "SOMETHING", ResourceType: TypeVM},                                     // 7: no id
		Event{Action: ActionUpdate, ResourceType: TypeVM, ResourceID: "a", NewValue: "{}"},   // 8
		Event{Action: ActionUpdate, ResourceType: TypeVM, ResourceID: "b", NewValue: "{}"},   // 9
	)
	c := memClient(t, s)
	p := c.page("start_revision", "0")
	if len(p.Data) != 9 {
		t.Fatalf("%d events", len(p.Data))
	}
	for i, want := range []struct{ prev, created string }{
		{"<nil>", "2025-03-03T21:06:07.891Z"},
		{"1", "2025-03-03T21:06:07.891Z"},
		{"<nil>", "2024-01-01T00:00:00.000Z"},
		{"<nil>", ""}, {"<nil>", ""}, {"3", ""}, {"<nil>", ""}, {"4", ""}, {"6", ""},
	} {
		e := p.Data[i]
		if str(e.PrevRevision) != want.prev || (want.created != "" && str(e.CreatedAt) != want.created) {
			t.Errorf("event %d: prev %s created %s, want %+v", i, str(e.PrevRevision), str(e.CreatedAt), want)
		}
	}
	if p.Data[0].OldValue != nil || p.Data[1].NewValue != nil {
		t.Errorf("empty values must be omitted: %+v", p.Data[:2])
	}
	// Compaction does not change what prev_revision points at.
	s.Compact(8)
	if evs := s.Events(0); len(evs) != 1 || evs[0].PrevRevision != 6 {
		t.Errorf("after compaction: %+v", evs)
	}
}

func TestAbsentStart(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
		appendN(s, 30)
		if got := revs(c.page("limit", "3")); !slices.Equal(got, []string{"28", "29", "30"}) {
			t.Errorf("newest: %v", got)
		}
		s.SetKnobs(Knobs{OldestWhenNoStart: true})
		if got := revs(c.page("limit", "3")); !slices.Equal(got, []string{"1", "2", "3"}) {
			t.Errorf("oldest: %v", got)
		}
		s.Compact(10)
		if got := revs(c.page("limit", "3")); !slices.Equal(got, []string{"11", "12", "13"}) {
			t.Errorf("oldest after compaction: %v", got)
		}
		// Filtered, newest.
		s.SetKnobs(Knobs{})
		s.Append(Event{Action: ActionInsert, ResourceType: TypeHost, ResourceID: "h1"}, Event{Action: ActionInsert, ResourceType: TypeHost, ResourceID: "h2"})
		appendN(s, 5)
		if got := revs(c.page("limit", "5", "resource_type", TypeHost)); !slices.Equal(got, []string{"31", "32"}) {
			t.Errorf("newest filtered: %v", got)
		}
	})
}

func TestInclusiveStart(t *testing.T) {
	forEachTransport(t, Config{Knobs: Knobs{InclusiveStart: true}}, func(t *testing.T, s *Server, c *client) {
		appendN(s, 10)
		if got := revs(c.page("start_revision", "4", "limit", "3")); !slices.Equal(got, []string{"4", "5", "6"}) {
			t.Errorf("inclusive: %v", got)
		}
		if got := revs(c.page("start_revision", "0", "limit", "2")); !slices.Equal(got, []string{"1", "2"}) {
			t.Errorf("inclusive from 0: %v", got)
		}
		s.SetKnobs(Knobs{})
		if got := revs(c.page("start_revision", "4", "limit", "3")); !slices.Equal(got, []string{"5", "6", "7"}) {
			t.Errorf("exclusive: %v", got)
		}
	})
}

func TestShuffle(t *testing.T) {
	run := func(seed int64) [][]string {
		s := New(Config{Seed: seed, Knobs: Knobs{Shuffle: true}})
		defer s.Close()
		appendN(s, 100)
		c := memClient(t, s)
		var out [][]string
		for _, start := range []string{"0", "50", "90"} {
			out = append(out, revs(c.page("start_revision", start, "limit", "10")))
		}
		return out
	}
	a, b, other := run(1), run(1), run(2)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("same seed, different order:\n%v\n%v", a, b)
	}
	if reflect.DeepEqual(a, other) {
		t.Errorf("different seeds, same order: %v", a)
	}
	for i, start := range []int{0, 50, 90} {
		got := slices.Clone(a[i])
		slices.SortFunc(got, func(x, y string) int { n, _ := strconv.Atoi(x); m, _ := strconv.Atoi(y); return n - m })
		var want []string
		for r := start + 1; r <= start+10; r++ {
			want = append(want, strconv.Itoa(r))
		}
		if !slices.Equal(got, want) {
			t.Errorf("page %d holds %v, want %v", i, got, want)
		}
		if slices.Equal(a[i], want) {
			t.Errorf("page %d is sorted: %v", i, a[i])
		}
	}
}

func TestRepeatEvery(t *testing.T) {
	forEachTransport(t, Config{Knobs: Knobs{RepeatEvery: 2}}, func(t *testing.T, s *Server, c *client) {
		appendN(s, 100)
		pos := 0
		var pattern []bool
		for range 9 {
			p := c.page("start_revision", strconv.Itoa(pos), "limit", "10")
			first, _ := strconv.Atoi(*p.Data[0].Revision)
			repeat := first <= pos
			pattern = append(pattern, repeat)
			last, _ := strconv.Atoi(*p.Data[len(p.Data)-1].Revision)
			pos = max(pos, last)
		}
		want := []bool{false, false, true, false, false, true, false, false, true}
		if !slices.Equal(pattern, want) {
			t.Errorf("repeat pattern %v, want %v", pattern, want)
		}
		st := s.Stats()
		if st.Repeats != 3 || st.Pages != 9 || st.Events != 60 {
			t.Errorf("stats %+v", st)
		}
		reqs := s.Requests()
		if len(reqs) != 9 || !reqs[2].Repeat || reqs[2].Events != 10 || reqs[2].StartRevision != "20" {
			t.Errorf("requests %+v", reqs)
		}
		// A repeat is byte for byte the previous response, stale head included.
		s.SetKnobs(Knobs{RepeatEvery: 1})
		a := c.changes("start_revision", "0", "limit", "5")
		appendN(s, 1)
		b := c.changes("start_revision", "50", "limit", "5")
		if string(a.body) != string(b.body) {
			t.Errorf("repeat differs:\n%s\n%s", a.body, b.body)
		}
		// Never two repeats in a row.
		if c2 := c.page("start_revision", "50", "limit", "5"); revs(c2)[0] != "51" {
			t.Errorf("second repeat in a row: %v", revs(c2))
		}
		s.SetKnobs(Knobs{})
		for range 3 {
			c.page("start_revision", "0")
		}
		if st := s.Stats(); st.Repeats != 4 {
			t.Errorf("repeats after turning off: %d", st.Repeats)
		}
	})
}

func TestRepeatRate(t *testing.T) {
	s := New(Config{Seed: 9, Knobs: Knobs{RepeatRate: 0.5}})
	defer s.Close()
	appendN(s, 10)
	c := memClient(t, s)
	prevRepeat := false
	for range 400 {
		c.page("start_revision", "0")
		r := s.Requests()
		repeat := r[len(r)-1].Repeat
		if repeat && prevRepeat {
			t.Fatal("two repeats in a row")
		}
		prevRepeat = repeat
	}
	// Eligible requests are those after a fresh page; half of them repeat.
	if n := s.Stats().Repeats; n < 100 || n > 170 {
		t.Errorf("%d repeats in 400 requests at rate 0.5", n)
	}
}

func TestFilters(t *testing.T) {
	forEachTransport(t, Config{Seed: 5}, func(t *testing.T, s *Server, c *client) {
		s.Generate(3000)
		all := s.Events(0)
		check := func(name string, match func(Event) bool, kv ...string) {
			t.Helper()
			var want []Event
			for _, e := range all {
				if e.Revision > 100 && match(e) {
					want = append(want, e)
				}
			}
			want = want[:min(len(want), 50)]
			p := c.page(append([]string{"start_revision", "100", "limit", "50"}, kv...)...)
			if str(p.CurrentRevision) != "3000" {
				t.Errorf("%s: currentRevision %s", name, str(p.CurrentRevision))
			}
			if len(p.Data) != len(want) || len(want) == 0 {
				t.Fatalf("%s: %d events, want %d", name, len(p.Data), len(want))
			}
			for i := range want {
				checkWireEvent(t, p.Data[i], want[i])
			}
		}
		check("type", func(e Event) bool { return e.ResourceType == TypeHost }, "resource_type", TypeHost)
		check("types", func(e Event) bool { return e.ResourceType == TypeHost || e.ResourceType == TypeCluster },
			"resource_type", "Host, Cluster,")
		check("action", func(e Event) bool { return e.Action == ActionDelete }, "action", ActionDelete)
		id := all[200].ResourceID
		check("id", func(e Event) bool { return e.ResourceID == id }, "resource_id", id)
		check("all", func(e Event) bool { return e.ResourceType == TypeVM && e.Action == ActionUpdate },
			"resource_type", TypeVM, "action", ActionUpdate)
		if p := c.page("resource_type", "NO_SUCH_TYPE"); len(p.Data) != 0 || str(p.CurrentRevision) != "3000" {
			t.Errorf("no match: %+v", p)
		}
		reqs := s.Requests()
		if r := reqs[len(reqs)-1]; r.ResourceType != "NO_SUCH_TYPE" || r.StartRevision != "" || r.Limit != "" {
			t.Errorf("recorded %+v", r)
		}
	})
}

func TestCompaction(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
		appendN(s, 50)
		if got := s.Compact(20); got != 20 || s.CompactRevision() != 20 || s.Len() != 30 || s.Head() != 50 {
			t.Fatalf("compact: %d, %d, len %d", got, s.CompactRevision(), s.Len())
		}
		if got := s.Compact(10); got != 20 {
			t.Errorf("compact lowered to %d", got)
		}
		p := c.page("start_revision", "5", "limit", "3")
		if !slices.Equal(revs(p), []string{"21", "22", "23"}) || str(p.CompactRevision) != "20" || str(p.CurrentRevision) != "50" {
			t.Errorf("below compact: %v %s %s", revs(p), str(p.CompactRevision), str(p.CurrentRevision))
		}
		if got := s.Events(0); len(got) != 30 || got[0].Revision != 21 {
			t.Errorf("events after compaction: %d from %d", len(got), got[0].Revision)
		}
		if got := s.Events(45); len(got) != 5 || got[0].Revision != 46 {
			t.Errorf("Events(45): %d", len(got))
		}
		if got := s.Compact(1000); got != 50 || s.Len() != 0 {
			t.Errorf("compact all: %d, len %d", got, s.Len())
		}
		p = c.page("start_revision", "0")
		if len(p.Data) != 0 || str(p.CompactRevision) != "50" || str(p.CurrentRevision) != "50" {
			t.Errorf("all compacted: %+v", p)
		}
		appendN(s, 1)
		if got := revs(c.page("start_revision", "50")); !slices.Equal(got, []string{"51"}) {
			t.Errorf("after compacting all: %v", got)
		}
	})
}

func TestRetention(t *testing.T) {
	s := New(Config{Retention: 100})
	defer s.Close()
	for range 10 {
		appendN(s, 37)
	}
	if s.Head() != 370 || s.Len() != 100 || s.CompactRevision() != 270 {
		t.Fatalf("head %d len %d compact %d", s.Head(), s.Len(), s.CompactRevision())
	}
	s.Generate(5000)
	if s.Head() != 5370 || s.Len() != 100 || s.CompactRevision() != 5270 {
		t.Fatalf("after generate: head %d len %d compact %d", s.Head(), s.Len(), s.CompactRevision())
	}
	evs := s.Events(0)
	for i, e := range evs {
		if e.Revision != 5271+uint64(i) {
			t.Fatalf("event %d has revision %d", i, e.Revision)
		}
	}
	s.SetRetention(10)
	if s.Len() != 10 || s.CompactRevision() != 5360 {
		t.Errorf("SetRetention: len %d compact %d", s.Len(), s.CompactRevision())
	}
	s.SetRetention(0)
	appendN(s, 100)
	if s.Len() != 110 {
		t.Errorf("unlimited: len %d", s.Len())
	}
}

func TestKeepAliveAndContentLength(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	base := s.StartHTTP()
	if s.URL() != base || "http://"+s.Host() != base || !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Fatalf("URL %q Host %q", s.URL(), s.Host())
	}
	if s.StartHTTP() != base {
		t.Error("second StartHTTP gave another URL")
	}
	s.Generate(300)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := newClient(t, s, &http.Client{Transport: tr}, base)
	var conns []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { conns = append(conns, i.Reused) }}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	reqs := []func() result{
		func() result { return c.changesCtx(ctx, "start_revision", "0", "limit", "1000") },
		func() result { return c.changesCtx(ctx, "limit", "0") },                           // 400
		func() result { return c.do(ctx, "GET", ResourceChangesPath, "", nil) },            // 401
		func() result { return c.do(ctx, "GET", BasePath+"/nothing", "", nil) },            // 404 text
		func() result { return c.do(ctx, "POST", LoginPath, `{"username":"admin"}`, nil) }, // 400
		func() result {
			return c.do(ctx, "POST", LoginPath, `{"username":"admin","password":"admin"}`, nil)
		},
		func() result { return c.changesCtx(ctx, "start_revision", "0", "limit", "1000") },
	}
	for i, do := range reqs {
		r := do()
		if r.err != nil || r.bodyErr != nil {
			t.Fatalf("request %d: %v %v", i, r.err, r.bodyErr)
		}
		want := contentJSON
		if r.resp.StatusCode == 404 {
			want = contentText
		}
		checkHeaders(t, r, want)
	}
	if !slices.Equal(conns, []bool{false, true, true, true, true, true, true}) {
		t.Errorf("connection reuse %v: every request after the first should reuse it", conns)
	}
}

func TestUnknownRoutes(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
		for _, mp := range [][2]string{{"GET", "/v2/api/vms"}, {"POST", ResourceChangesPath}, {"GET", "/"}} {
			r := c.do(context.Background(), mp[0], mp[1], "", nil)
			if r.err != nil || r.resp.StatusCode != 404 || string(r.body) != "Cannot "+mp[0]+" "+mp[1] {
				t.Errorf("%v: %v %q", mp, r.err, r.body)
			}
			checkHeaders(t, r, contentText)
		}
		if st := s.Stats(); st.Requests != 3 || st.StatusCodes[404] != 3 || st.ResourceChanges != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestStatsAndRequests(t *testing.T) {
	s := New(Config{RequestLog: 3})
	defer s.Close()
	appendN(s, 20)
	c := memClient(t, s)
	c.page("start_revision", "0", "limit", "5")
	s.InjectFaults(Fault503)
	c.changes("start_revision", "5", "limit", "5")
	c.page("start_revision", "5", "limit", "5", "resource_type", "Vm,Host", "resource_id", "x", "action", "INSERT")
	c.changes("limit", "zero")
	st := s.Stats()
	want := Stats{
		Requests: 4, ResourceChanges: 4, Pages: 2, Events: 5, Faults: 1,
		FaultsByKind: map[FaultKind]int{Fault503: 1},
		StatusCodes:  map[int]int{200: 2, 503: 1, 400: 1},
	}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("stats\n got %+v\nwant %+v", st, want)
	}
	reqs := s.Requests()
	wantReqs := []Request{
		{StartRevision: "5", Limit: "5", Auth: "basic", Status: 503, Fault: Fault503},
		{StartRevision: "5", Limit: "5", ResourceType: "Vm,Host", ResourceID: "x", Action: "INSERT", Auth: "basic", Status: 200},
		{Limit: "zero", Auth: "basic", Status: 400},
	}
	if !reflect.DeepEqual(reqs, wantReqs) {
		t.Errorf("requests\n got %+v\nwant %+v", reqs, wantReqs)
	}
	st.StatusCodes[200] = 99 // a copy
	s.ResetStats()
	if st := s.Stats(); st.Requests != 0 || len(st.StatusCodes) != 0 || len(s.Requests()) != 0 {
		t.Errorf("after reset: %+v %v", st, s.Requests())
	}
	none := New(Config{RequestLog: -1})
	defer none.Close()
	nc := memClient(t, none)
	nc.page()
	if len(none.Requests()) != 0 || none.Stats().Pages != 1 {
		t.Error("RequestLog -1 still records")
	}
}

func TestJSONEscaping(t *testing.T) {
	tricky := []string{
		`plain`, `"quoted"`, `back\slash`, "ctl\x00\x01\x1f\x7f", "nl\n\r\t\b\f",
		"<html>&amp;</html>", "unicode é 中文 🚀", "bad utf8 \xff\xfe end", "\u2028\u2029",
		`{"json":"inside","n":[1,2]}`, "",
	}
	s := New(Config{})
	defer s.Close()
	for _, v := range tricky {
		s.Append(Event{Action: v, ResourceType: v, ResourceID: v, NewValue: v, OldValue: v})
	}
	c := memClient(t, s)
	p := c.page("start_revision", "0")
	for i, v := range tricky {
		var want string // what encoding/json makes of it (one U+FFFD per bad byte)
		b, _ := json.Marshal(v)
		_ = json.Unmarshal(b, &want)
		e := p.Data[i]
		if str(e.Action) != want || str(e.ResourceID) != want || str(e.ResourceType) != want {
			t.Errorf("%q: got %q", v, str(e.Action))
		}
		if v != "" && str(e.NewValue) != want {
			t.Errorf("%q: new_value %q", v, str(e.NewValue))
		}
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", `"\`, "\x00\u2028", "\xff", "é中🚀", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("%q: got %q, encoding/json gives %q", s, got, wantS)
		}
	})
}

func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2025, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 12, 0, 0, 5_000_000, time.FixedZone("X", -5*3600)),
		time.Date(12345, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		got := string(appendTime(nil, tm))
		want := tm.UTC().Format("2006-01-02T15:04:05.000Z07:00")
		if got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestRequestRing(t *testing.T) {
	var r requestRing
	r.buf = make([]Request, 3)
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, r.add(Request{Limit: strconv.Itoa(i)}))
	}
	limits := func() (out []string) {
		for _, q := range r.all() {
			out = append(out, q.Limit+"/"+strconv.Itoa(q.Status))
		}
		return out
	}
	if r.at(seqs[1]) != nil || r.at(seqs[2]) == nil {
		t.Error("at: wrong window")
	}
	r.at(seqs[3]).Status = 200
	if got := limits(); !slices.Equal(got, []string{"2/0", "3/200", "4/0"}) {
		t.Errorf("all = %v", got)
	}
	r.reset()
	if r.at(seqs[4]) != nil || len(r.all()) != 0 {
		t.Error("a request from before the reset is still there")
	}
	r.add(Request{Limit: "5"})
	if got := limits(); !slices.Equal(got, []string{"5/0"}) {
		t.Errorf("after reset: %v", got)
	}
}

// RepeatEvery turned on at run time counts fresh pages from then on: pages
// served while the knob was off do not bring the first repeat forward.
func TestRepeatEverySetAtRunTime(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, s *Server, c *client) {
		appendN(s, 10)
		for range 5 {
			c.page("start_revision", "0", "limit", "2")
		}
		s.SetKnobs(Knobs{RepeatEvery: 3})
		var pattern []bool
		for range 8 {
			c.page("start_revision", "0", "limit", "2")
			reqs := s.Requests()
			pattern = append(pattern, reqs[len(reqs)-1].Repeat)
		}
		if want := []bool{false, false, false, true, false, false, false, true}; !slices.Equal(pattern, want) {
			t.Errorf("repeat pattern %v, want %v", pattern, want)
		}
	})
}
