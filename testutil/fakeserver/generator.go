package fakeserver

import (
	"context"
	"errors"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"time"
)

// Resource types the generator produces.
const (
	TypeVM       = "VM"
	TypeHost     = "HOST"
	TypeVolume   = "VOLUME"
	TypeVMVolume = "VM_VOLUME"
	TypeCluster  = "CLUSTER"
)

// ResourceTypes returns the resource types the generator produces.
func ResourceTypes() []string {
	return []string{TypeVM, TypeHost, TypeVolume, TypeVMVolume, TypeCluster}
}

// Generate appends n realistic changes to the log and returns the new
// head.
//
// Changes are spread over ResourceTypes with actions that are consistent
// per resource: a resource is created, then updated any number of times,
// then perhaps deleted, and never mentioned again. Ids are CloudTower-like
// cuids (25 lowercase alphanumerics starting with "c"); new and old values
// are JSON objects of about 300 bytes, an update's old value being the
// previous new value. The sequence depends only on Config.Seed (and, for
// created_at, on Config.Now). Generated and appended events share the log;
// the generator only tracks the resources it made.
func (s *Server) Generate(n int) uint64 {
	s.genMu.Lock()
	defer s.genMu.Unlock()
	if s.gen == nil {
		s.gen = newGenerator(s.seed)
	}
	const chunk = 1024 // append in chunks so readers are not held up
	if n > chunk {
		s.log.reserve(n)
	}
	var batch []Event
	for n > 0 {
		m := min(n, chunk)
		if batch == nil {
			batch = make([]Event, 0, m)
		}
		batch = batch[:0]
		for range m {
			batch = append(batch, s.gen.next())
		}
		s.log.append(s.now(), batch)
		n -= m
	}
	return s.Head()
}

// RunGenerator generates batch changes every interval until ctx is done or
// the server closes, and then returns ctx's error or ErrClosed. It blocks:
// the caller owns the goroutine it runs in, and stops it by cancelling ctx
// (or closing the server). It uses a time.Ticker, so it follows fake time
// inside a testing/synctest bubble.
func (s *Server) RunGenerator(ctx context.Context, every time.Duration, batch int) error {
	if every <= 0 || batch <= 0 {
		return errors.New("fakeserver: RunGenerator needs a positive interval and batch")
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		case <-t.C:
			s.Generate(batch)
		}
	}
}

// kind indexes the generated resource types.
type kind uint8

const (
	kVM kind = iota
	kHost
	kVolume
	kVMVolume
	kCluster
	numKinds
)

// kinds describes each type: its name, how often it changes (weights add
// up to 100) and the population it hovers around.
var kinds = [numKinds]struct {
	name   string
	weight int
	target int
}{
	kVM:       {TypeVM, 45, 400},
	kHost:     {TypeHost, 10, 24},
	kVolume:   {TypeVolume, 15, 150},
	kVMVolume: {TypeVMVolume, 25, 600},
	kCluster:  {TypeCluster, 5, 4},
}

var (
	vmRoles      = []string{"web", "db", "cache", "app", "k8s-node", "batch", "ci-runner", "gateway"}
	vmStatus     = []string{"RUNNING", "STOPPED", "SUSPENDED"}
	hostStatus   = []string{"CONNECTED_HEALTHY", "CONNECTED_WARNING", "CONNECTED_ERROR", "SESSION_EXPIRED"}
	hostState    = []string{"IDLE", "IN_USE", "MAINTENANCE"}
	cpuModels    = []string{"Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz", "AMD EPYC 7543 32-Core Processor", "Hygon C86 7285 32-core Processor"}
	volStatus    = []string{"NORMAL", "DEGRADED", "RECOVERING"}
	policies     = []string{"REPLICA_2_THIN_PROVISION", "REPLICA_3_THIN_PROVISION", "REPLICA_2_THICK_PROVISION", "REPLICA_3_THICK_PROVISION"}
	connStates   = []string{"CONNECTED", "DISCONNECTED", "INITIALIZING"}
	osVersions   = []string{"5.1.5", "6.0.0", "6.1.0", "6.2.0"}
	vcpuChoices  = []int64{1, 2, 4, 8, 16}
	gibChoices   = []int64{1, 2, 4, 8, 16, 32}
	coreChoices  = []int64{32, 48, 64, 96}
	hostMemGiB   = []int64{256, 384, 512, 768}
	volSizesGiB  = []int64{10, 50, 100, 500, 1024}
	diskSizesGiB = []int64{20, 40, 80, 200, 500}
)

const gib = 1 << 30

// resource is a live generated resource.
type resource struct {
	id, localID, name string
	cluster, host     string
	value             string   // current JSON
	num               [3]int64 // type-specific numbers
	status, state     uint8
	flag              bool
	labels            uint16 // bit i set: label i of the pool
	pos               int    // index in generator.live
}

type generator struct {
	rng     *rand.Rand
	live    [numKinds][]*resource
	seq     [numKinds]int
	idClock uint64
	labels  [8]string
	phantom [numKinds]string // referenced while no live resource of a kind exists
	buf     []byte
}

func newGenerator(seed int64) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(uint64(seed), 0x6e_6e7a_7e))}
	// Millisecond clock of a cuid: 8 base-36 digits starting with "l" for
	// dates in 2023-2025, which is why real ids look like "cl...".
	g.idClock = 1_690_000_000_000 + g.rng.Uint64N(60_000_000_000)
	for i := range g.labels {
		g.labels[i] = g.cuid()
	}
	for k := range g.phantom {
		g.phantom[k] = g.cuid()
	}
	g.buf = make([]byte, 0, 512)
	return g
}

const base36 = "0123456789abcdefghijklmnopqrstuvwxyz"

// cuid returns a new unique CloudTower-like id: "c", an 8-digit base-36
// clock that increases with every id, and 16 random base-36 digits.
func (g *generator) cuid() string {
	var b [25]byte
	b[0] = 'c'
	g.idClock += 1 + g.rng.Uint64N(97)
	ts := g.idClock
	for i := 8; i >= 1; i-- {
		b[i] = base36[ts%36]
		ts /= 36
	}
	x, y := g.rng.Uint64(), g.rng.Uint64()
	for i := 9; i < 17; i++ {
		b[i] = base36[x%36]
		x /= 36
	}
	for i := 17; i < 25; i++ {
		b[i] = base36[y%36]
		y /= 36
	}
	return string(b[:])
}

func (g *generator) uuid() string {
	var b [36]byte
	x, y := g.rng.Uint64(), g.rng.Uint64()
	j := 0
	for i := range b {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			b[i] = '-'
			continue
		}
		v := &x
		if j >= 16 {
			v = &y
		}
		b[i] = hexDigits[*v&0xf]
		*v >>= 4
		j++
	}
	return string(b[:])
}

func (g *generator) pickKind() kind {
	x := g.rng.IntN(100)
	for k := range numKinds {
		if x < kinds[k].weight {
			return k
		}
		x -= kinds[k].weight
	}
	return kVM
}

// ref returns the id of a random live resource of kind k.
func (g *generator) ref(k kind) string {
	if l := g.live[k]; len(l) > 0 {
		return l[g.rng.IntN(len(l))].id
	}
	return g.phantom[k]
}

func pick[T any](g *generator, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// next returns the next change (without revision and created_at).
func (g *generator) next() Event {
	k := g.pickKind()
	n := len(g.live[k])
	create, del := 30, 8 // percent, below the target population
	if n >= kinds[k].target {
		create, del = 8, 30
	}
	x := g.rng.IntN(100)
	switch {
	case n == 0 || x < create:
		r := &resource{id: g.cuid()}
		g.initResource(k, r)
		r.value = g.render(k, r)
		r.pos = n
		g.live[k] = append(g.live[k], r)
		return Event{Action: ActionCreate, ResourceType: kinds[k].name, ResourceID: r.id, NewValue: r.value}
	case x < create+del:
		i := g.rng.IntN(n)
		r := g.live[k][i]
		last := g.live[k][n-1]
		last.pos = i
		g.live[k][i] = last
		g.live[k][n-1] = nil
		g.live[k] = g.live[k][:n-1]
		return Event{Action: ActionDelete, ResourceType: kinds[k].name, ResourceID: r.id, OldValue: r.value}
	default:
		r := g.live[k][g.rng.IntN(n)]
		old := r.value
		for try := 0; r.value == old; try++ {
			if try < 4 {
				g.mutate(k, r)
			} else {
				g.toggleLabel(r) // always changes the value
			}
			r.value = g.render(k, r)
		}
		return Event{Action: ActionUpdate, ResourceType: kinds[k].name, ResourceID: r.id, NewValue: r.value, OldValue: old}
	}
}

func (g *generator) initResource(k kind, r *resource) {
	g.seq[k]++
	seq := int64(g.seq[k])
	var b []byte
	for range g.rng.IntN(3) {
		r.labels |= 1 << g.rng.IntN(len(g.labels))
	}
	switch k {
	case kVM:
		b = append(b, "vm-"...)
		b = append(b, pick(g, vmRoles)...)
		b = append(b, '-')
		b = appendPadded(b, seq, 6)
		r.localID = g.uuid()
		r.cluster, r.host = g.ref(kCluster), g.ref(kHost)
		r.num[0] = pick(g, vcpuChoices)
		r.num[1] = pick(g, gibChoices) * gib
		r.flag = g.rng.IntN(4) > 0
	case kHost:
		b = append(b, "node-"...)
		b = appendPadded(b, seq, 4)
		r.cluster = g.ref(kCluster)
		r.num[0] = pick(g, coreChoices)
		r.num[1] = pick(g, hostMemGiB) * gib
		r.num[2] = int64(g.rng.IntN(len(cpuModels)))
	case kVolume:
		b = append(b, "vol-"...)
		b = appendPadded(b, seq, 5)
		r.cluster = g.ref(kCluster)
		r.num[0] = pick(g, volSizesGiB) * gib
		r.num[1] = r.num[0] / 100 * int64(g.rng.IntN(60))
		r.num[2] = int64(2 + g.rng.IntN(2))
		r.flag = g.rng.IntN(2) == 0
	case kVMVolume:
		b = append(b, "vm-volume-"...)
		b = appendPadded(b, seq, 6)
		r.localID = g.uuid()
		r.cluster = g.ref(kCluster)
		r.num[0] = pick(g, diskSizesGiB) * gib
		r.num[1] = r.num[0] / 100 * int64(g.rng.IntN(80))
		r.num[2] = int64(g.rng.IntN(len(policies)))
		r.flag = true
	case kCluster:
		b = append(b, "cluster-"...)
		b = appendPadded(b, seq, 2)
		r.num[0] = 4 * pick(g, coreChoices)
		r.num[1] = (100 + int64(g.rng.IntN(400))) * 1024 * gib
		r.num[2] = r.num[1] / 100 * int64(10+g.rng.IntN(50))
		r.state = uint8(g.rng.IntN(len(osVersions)))
	}
	r.name = string(b)
}

// mutate changes one or two fields of r, as an update would.
func (g *generator) mutate(k kind, r *resource) {
	switch k {
	case kVM:
		switch g.rng.IntN(5) {
		case 0:
			r.status = uint8((int(r.status) + 1 + g.rng.IntN(len(vmStatus)-1)) % len(vmStatus))
		case 1:
			r.num[0] = pick(g, vcpuChoices)
		case 2:
			r.num[1] = pick(g, gibChoices) * gib
		case 3:
			r.host = g.ref(kHost)
		default:
			g.toggleLabel(r)
		}
	case kHost:
		switch g.rng.IntN(3) {
		case 0:
			r.status = uint8(g.rng.IntN(len(hostStatus)))
		case 1:
			r.state = uint8(g.rng.IntN(len(hostState)))
		default:
			g.toggleLabel(r)
		}
	case kVolume:
		switch g.rng.IntN(3) {
		case 0:
			r.num[1] = min(r.num[0], r.num[1]+r.num[0]/100*int64(1+g.rng.IntN(5)))
		case 1:
			r.status = uint8(g.rng.IntN(len(volStatus)))
		default:
			g.toggleLabel(r)
		}
	case kVMVolume:
		switch g.rng.IntN(3) {
		case 0:
			r.num[1] = min(r.num[0], r.num[1]+r.num[0]/100*int64(1+g.rng.IntN(5)))
		case 1:
			r.flag = !r.flag
		default:
			r.num[0] += 10 * gib
		}
	case kCluster:
		switch g.rng.IntN(4) {
		case 0:
			r.num[2] = min(r.num[1], r.num[2]+r.num[1]/1000*int64(1+g.rng.IntN(20)))
		case 1:
			r.status = uint8(g.rng.IntN(len(connStates)))
		case 2:
			r.state = uint8(min(int(r.state)+1, len(osVersions)-1))
		default:
			g.toggleLabel(r)
		}
	}
}

// render returns r as CloudTower-like JSON. Every string in it is made of
// characters that need no JSON escaping.
func (g *generator) render(k kind, r *resource) string {
	b := append(g.buf[:0], `{"id":"`...)
	b = append(b, r.id...)
	b = append(b, `","name":"`...)
	b = append(b, r.name...)
	b = append(b, '"')
	switch k {
	case kVM:
		b = appendField(b, "status", vmStatus[r.status])
		b = appendInt(b, "vcpu", r.num[0])
		b = appendInt(b, "memory", r.num[1])
		b = appendRef(b, "cluster", r.cluster)
		b = appendRef(b, "host", r.host)
		b = append(b, `,"ha":`...)
		b = strconv.AppendBool(b, r.flag)
		b = append(b, `,"guest_os_type":"LINUX"`...)
		b = g.appendLabels(b, r.labels)
		b = appendField(b, "local_id", r.localID)
	case kHost:
		b = appendField(b, "status", hostStatus[r.status])
		b = appendField(b, "state", hostState[r.state])
		b = appendRef(b, "cluster", r.cluster)
		b = appendField(b, "cpu_model", cpuModels[r.num[2]])
		b = appendInt(b, "total_cpu_cores", r.num[0])
		b = appendInt(b, "total_memory_bytes", r.num[1])
		b = appendIP(b, "management_ip", 0, r.name)
		b = g.appendLabels(b, r.labels)
	case kVolume:
		b = appendField(b, "status", volStatus[r.status])
		b = appendRef(b, "cluster", r.cluster)
		b = appendInt(b, "size", r.num[0])
		b = appendInt(b, "used_size", r.num[1])
		b = appendInt(b, "replica_num", r.num[2])
		b = append(b, `,"thin_provision":`...)
		b = strconv.AppendBool(b, r.flag)
		b = append(b, `,"iqn":"iqn.2016-02.com.smartx:system:`...)
		b = append(b, r.name...)
		b = append(b, '"')
		b = g.appendLabels(b, r.labels)
	case kVMVolume:
		b = appendRef(b, "cluster", r.cluster)
		b = appendInt(b, "size", r.num[0])
		b = appendInt(b, "unique_size", r.num[1])
		b = appendField(b, "elf_storage_policy", policies[r.num[2]])
		b = append(b, `,"mounting":`...)
		b = strconv.AppendBool(b, r.flag)
		b = append(b, `,"path":"/usr/share/smartx/volumes/`...)
		b = append(b, r.localID...)
		b = append(b, '"')
		b = g.appendLabels(b, r.labels)
	case kCluster:
		b = append(b, `,"type":"SMTX_OS","hypervisor":"ELF"`...)
		b = appendField(b, "version", osVersions[r.state])
		b = appendField(b, "connect_state", connStates[r.status])
		b = appendInt(b, "total_cpu_cores", r.num[0])
		b = appendInt(b, "total_data_capacity", r.num[1])
		b = appendInt(b, "used_data_space", r.num[2])
		b = append(b, `,"ntp_mode":"EXTERNAL"`...)
		b = g.appendLabels(b, r.labels)
	}
	b = append(b, '}')
	g.buf = b
	return string(b)
}

func appendField(b []byte, key, val string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"`...)
	b = append(b, val...)
	return append(b, '"')
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendInt(b, v, 10)
}

func appendRef(b []byte, key, id string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":{"id":"`...)
	b = append(b, id...)
	return append(b, `"}`...)
}

// appendIP appends an address derived from a host name's number.
func appendIP(b []byte, key string, net int64, name string) []byte {
	n := 0
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= '0' && c <= '9' {
			n = n*10 + int(c-'0')
		}
	}
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"10.`...)
	b = strconv.AppendInt(b, net, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(n/250%250), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(1+n%250), 10)
	return append(b, '"')
}

// toggleLabel adds or removes one label, keeping at most maxLabels.
func (g *generator) toggleLabel(r *resource) {
	bit := uint16(1) << g.rng.IntN(len(g.labels))
	if r.labels&bit == 0 && bits.OnesCount16(r.labels) >= maxLabels {
		bit = r.labels & -r.labels // remove the lowest label instead
	}
	r.labels ^= bit
}

const maxLabels = 3

func (g *generator) appendLabels(b []byte, set uint16) []byte {
	b = append(b, `,"labels":[`...)
	first := true
	for i := range g.labels {
		if set&(1<<i) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, `{"id":"`...)
		b = append(b, g.labels[i]...)
		b = append(b, `"}`...)
	}
	return append(b, ']')
}

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	var d [20]byte
	s := strconv.AppendInt(d[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
