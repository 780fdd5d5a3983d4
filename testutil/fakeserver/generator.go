package fakeserver

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"
)

// Resource types, spelled as CloudTower spells them in resource_type: the
// SDK's model names, and "_" + A + "To" + B for the relation between A
// and B.
const (
	TypeVM       = "Vm"
	TypeHost     = "Host"
	TypeCluster  = "Cluster"
	TypeVMVolume = "VmVolume"
	TypeVMNic    = "VmNic"
	TypeLabel    = "Label"
	// TypeLabelToVM is the relation between labels and VMs; its objects
	// are {"id":..,"A":<label id>,"B":<vm id>} (A is the model first in
	// alphabetical order, as in the Prisma schema CloudTower is built on
	// and in the production user's tests).
	TypeLabelToVM = "_LabelToVm"
)

// ResourceTypes returns the resource types the generator produces.
func ResourceTypes() []string {
	return []string{TypeVM, TypeHost, TypeCluster, TypeVMVolume, TypeVMNic, TypeLabel, TypeLabelToVM}
}

// Generate appends n realistic changes to the log and returns the new
// head.
//
// Changes are spread over ResourceTypes with actions that are consistent
// per resource: a resource is inserted (ActionInsert, the object in
// new_value), then updated any number of times (ActionUpdate, the object
// before and after in old_value and new_value; now and then both are the
// same, as CloudTower sends for resources synced from another component),
// then perhaps deleted (ActionDelete, the object in old_value), and never
// mentioned again. Relations (TypeLabelToVM) are only inserted and deleted.
// Ids are CloudTower-like cuids (25 lowercase alphanumerics starting with
// "c"); values are JSON objects with the field names of the SDK's models
// (models.VM, models.Host, models.Cluster, models.VMVolume, models.VMNic,
// models.Label; {"id","A","B"} for relations) and values their enums
// accept, about 400 bytes for a VM. They carry the main fields, not every
// field the models mark as required. References (a VM's cluster and host,
// a NIC's vm) name live resources when there are any; a reference may
// outlive the resource it names (deletes do not cascade). The sequence
// depends only on Config.Seed (and, for created_at, on Config.Now).
// Generated and appended events share the log and the state; the
// generator only tracks the resources it made.
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
		s.log.append(s.now(), batch, true)
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
	kCluster
	kVMVolume
	kVMNic
	kLabel
	kLabelToVM
	numKinds
)

// kinds describes each type: its name, how often it changes (weights add
// up to 100) and the population it hovers around.
var kinds = [numKinds]struct {
	name   string
	weight int
	target int
}{
	kVM:        {TypeVM, 36, 400},
	kHost:      {TypeHost, 8, 24},
	kCluster:   {TypeCluster, 4, 4},
	kVMVolume:  {TypeVMVolume, 20, 600},
	kVMNic:     {TypeVMNic, 12, 500},
	kLabel:     {TypeLabel, 5, 30},
	kLabelToVM: {TypeLabelToVM, 15, 300},
}

// Values of the SDK's enums (models.VMStatus, models.HostStatus, ...).
var (
	vmRoles      = []string{"web", "db", "cache", "app", "k8s-node", "batch", "ci-runner", "gateway"}
	vmStatus     = []string{"RUNNING", "STOPPED", "SUSPENDED"}
	hostStatus   = []string{"CONNECTED_HEALTHY", "CONNECTED_WARNING", "CONNECTED_ERROR", "SESSION_EXPIRED"}
	hostState    = []string{"IDLE", "IN_USE"}
	cpuModels    = []string{"Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz", "AMD EPYC 7543 32-Core Processor", "Hygon C86 7285 32-core Processor"}
	cpuBrands    = []string{"Intel", "Intel", "AMD", "Hygon"}
	policies     = []string{"REPLICA_2_THIN_PROVISION", "REPLICA_3_THIN_PROVISION", "REPLICA_2_THICK_PROVISION", "REPLICA_3_THICK_PROVISION"}
	connStates   = []string{"CONNECTED", "DISCONNECTED", "INITIALIZING"}
	osVersions   = []string{"5.1.5", "6.0.0", "6.1.0", "6.2.0"}
	labelKeys    = []string{"env", "team", "app", "tier", "owner", "zone"}
	labelValues  = []string{"prod", "staging", "dev", "infra", "payments", "search", "frontend", "backend", "a", "b"}
	vcpuChoices  = []int64{1, 2, 4, 8, 16}
	gibChoices   = []int64{1, 2, 4, 8, 16, 32}
	coreChoices  = []int64{32, 48, 64, 96}
	hostMemGiB   = []int64{256, 384, 512, 768}
	diskSizesGiB = []int64{20, 40, 80, 200, 500}
)

const gib = 1 << 30

// syncUpdatePercent is how often (in percent) an update of an object
// carries old_value == new_value, as CloudTower sends for resources
// synced from another component.
const syncUpdatePercent = 3

// resource is a live generated resource.
type resource struct {
	id, localID, name string
	ref               [2]*resource // cluster and host of a VM; cluster of a host or volume; vm and vlan of a nic; label and vm of a relation
	value             string       // current JSON
	num               [3]int64     // type-specific numbers
	created           int64        // Unix milliseconds
	status, state     uint8
	flag              bool
	pos               int // index in generator.live
}

type generator struct {
	rng     *rand.Rand
	live    [numKinds][]*resource
	seq     [numKinds]int
	idClock uint64
	vlans   [4]*resource
	pairs   map[[2]string]*resource // live relations by (A, B)
	buf     []byte
}

func newGenerator(seed int64) *generator {
	g := &generator{rng: rand.New(rand.NewPCG(uint64(seed), 0x6e_6e7a_7e)), pairs: map[[2]string]*resource{}}
	// Millisecond clock of a cuid: 8 base-36 digits starting with "l" for
	// dates in 2023-2025, which is why real ids look like "cl...".
	g.idClock = 1_690_000_000_000 + g.rng.Uint64N(60_000_000_000)
	for i := range g.vlans {
		g.vlans[i] = &resource{id: g.cuid(), name: "vlan-" + strconv.Itoa(100+10*i)}
	}
	g.buf = make([]byte, 0, 768)
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

// refs lists the kinds each kind refers to.
var refs = [numKinds][]kind{
	kVM:        {kCluster, kHost},
	kHost:      {kCluster},
	kVMVolume:  {kCluster},
	kVMNic:     {kVM},
	kLabelToVM: {kLabel, kVM},
}

// missing returns a kind that k refers to, directly or not, of which no
// resource is live, so that it must be inserted first; ok is false if
// there is none.
func (g *generator) missing(k kind) (m kind, ok bool) {
	for _, r := range refs[k] {
		if len(g.live[r]) == 0 {
			if m, ok := g.missing(r); ok {
				return m, true
			}
			return r, true
		}
	}
	return 0, false
}

// ref returns a random live resource of kind k (there is one: see
// missing).
func (g *generator) ref(k kind) *resource {
	l := g.live[k]
	return l[g.rng.IntN(len(l))]
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
	if k == kLabelToVM && x >= create+del { // relations are inserted and deleted, never updated
		x = g.rng.IntN(create + del)
	}
	if x < create || n == 0 {
		if m, ok := g.missing(k); ok { // what it would refer to comes first
			k, n, x = m, 0, 0
		}
	}
	switch {
	case n == 0 || x < create:
		r := &resource{id: g.cuid()}
		g.initResource(k, r)
		if k == kLabelToVM {
			pair := [2]string{r.ref[0].id, r.ref[1].id}
			if old := g.pairs[pair]; old != nil {
				return g.remove(k, old) // the pair exists: unlink it instead
			}
			g.pairs[pair] = r
		}
		r.value = g.render(k, r)
		r.pos = n
		g.live[k] = append(g.live[k], r)
		return Event{Action: ActionInsert, ResourceType: kinds[k].name, ResourceID: r.id, NewValue: r.value}
	case x < create+del:
		return g.remove(k, g.live[k][g.rng.IntN(n)])
	default:
		r := g.live[k][g.rng.IntN(n)]
		old := r.value
		if g.rng.IntN(100) < syncUpdatePercent {
			return Event{Action: ActionUpdate, ResourceType: kinds[k].name, ResourceID: r.id, NewValue: old, OldValue: old}
		}
		for try := 0; r.value == old; try++ {
			if try < 4 {
				g.mutate(k, r)
			} else {
				r.flag = !r.flag // always changes the value
			}
			r.value = g.render(k, r)
		}
		return Event{Action: ActionUpdate, ResourceType: kinds[k].name, ResourceID: r.id, NewValue: r.value, OldValue: old}
	}
}

// remove deletes the live resource r of kind k and returns its DELETE.
func (g *generator) remove(k kind, r *resource) Event {
	l := g.live[k]
	i, n := r.pos, len(l)
	last := l[n-1]
	last.pos = i
	l[i] = last
	l[n-1] = nil
	g.live[k] = l[:n-1]
	if k == kLabelToVM {
		delete(g.pairs, [2]string{r.ref[0].id, r.ref[1].id})
	}
	return Event{Action: ActionDelete, ResourceType: kinds[k].name, ResourceID: r.id, OldValue: r.value}
}

func (g *generator) initResource(k kind, r *resource) {
	g.seq[k]++
	seq := int64(g.seq[k])
	r.created = int64(g.idClock)
	var b []byte
	switch k {
	case kVM:
		b = append(b, "vm-"...)
		b = append(b, pick(g, vmRoles)...)
		b = append(b, '-')
		b = appendPadded(b, seq, 6)
		r.localID = g.uuid()
		r.ref = [2]*resource{g.ref(kCluster), g.ref(kHost)}
		r.num[0] = pick(g, vcpuChoices)
		r.num[1] = pick(g, gibChoices) * gib
		r.flag = g.rng.IntN(4) > 0
	case kHost:
		b = append(b, "node-"...)
		b = appendPadded(b, seq, 4)
		r.localID = g.uuid()
		r.ref[0] = g.ref(kCluster)
		r.num[0] = pick(g, coreChoices)
		r.num[1] = pick(g, hostMemGiB) * gib
		r.num[2] = int64(g.rng.IntN(len(cpuModels)))
	case kCluster:
		b = append(b, "cluster-"...)
		b = appendPadded(b, seq, 2)
		r.localID = g.uuid()
		r.num[0] = 4 * pick(g, coreChoices)
		r.num[1] = (100 + int64(g.rng.IntN(400))) * 1024 * gib
		r.num[2] = r.num[1] / 100 * int64(10+g.rng.IntN(50))
		r.state = uint8(g.rng.IntN(len(osVersions)))
	case kVMVolume:
		b = append(b, "vm-volume-"...)
		b = appendPadded(b, seq, 6)
		r.localID = g.uuid()
		r.ref[0] = g.ref(kCluster)
		r.num[0] = pick(g, diskSizesGiB) * gib
		r.num[1] = r.num[0] / 100 * int64(g.rng.IntN(80))
		r.num[2] = int64(g.rng.IntN(len(policies)))
		r.flag = true
	case kVMNic:
		r.localID = g.uuid()
		r.ref = [2]*resource{g.ref(kVM), g.vlans[g.rng.IntN(len(g.vlans))]}
		r.num[0] = int64(g.rng.Uint64N(1 << 24)) // MAC suffix
		r.num[1] = int64(g.rng.IntN(250 * 250))  // IP suffix
		r.flag = true
	case kLabel:
		r.status = uint8(g.rng.IntN(len(labelKeys)))
		r.state = uint8(g.rng.IntN(len(labelValues)))
	case kLabelToVM:
		r.ref = [2]*resource{g.ref(kLabel), g.ref(kVM)}
	}
	r.name = string(b)
}

// mutate changes one or two fields of r, as an update would.
func (g *generator) mutate(k kind, r *resource) {
	switch k {
	case kVM:
		switch g.rng.IntN(5) {
		case 0, 4:
			r.status = uint8((int(r.status) + 1 + g.rng.IntN(len(vmStatus)-1)) % len(vmStatus))
		case 1:
			r.num[0] = pick(g, vcpuChoices)
		case 2:
			r.num[1] = pick(g, gibChoices) * gib
		default:
			if len(g.live[kHost]) > 0 { // migrate
				r.ref[1] = g.ref(kHost)
			}
		}
	case kHost:
		switch g.rng.IntN(3) {
		case 0:
			r.status = uint8(g.rng.IntN(len(hostStatus)))
		case 1:
			r.state = uint8(g.rng.IntN(len(hostState)))
		default:
			r.flag = !r.flag
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
		switch g.rng.IntN(3) {
		case 0:
			r.num[2] = min(r.num[1], r.num[2]+r.num[1]/1000*int64(1+g.rng.IntN(20)))
		case 1:
			r.status = uint8(g.rng.IntN(len(connStates)))
		default:
			r.state = uint8(min(int(r.state)+1, len(osVersions)-1))
		}
	case kVMNic:
		switch g.rng.IntN(2) {
		case 0:
			r.num[1] = int64(g.rng.IntN(250 * 250))
		default:
			r.flag = !r.flag
		}
	case kLabel:
		r.state = uint8((int(r.state) + 1 + g.rng.IntN(len(labelValues)-1)) % len(labelValues))
	}
}

// render returns r as JSON with the field names of the SDK's model of
// its type (models.VM, models.Host, ...) and values its enums accept.
// Every string in it is made of characters that need no JSON escaping.
func (g *generator) render(k kind, r *resource) string {
	b := append(g.buf[:0], `{"id":"`...)
	b = append(b, r.id...)
	b = append(b, '"')
	switch k {
	case kVM:
		b = appendField(b, "name", r.name)
		b = appendField(b, "status", vmStatus[r.status])
		b = appendInt(b, "vcpu", r.num[0])
		b = append(b, `,"cpu":{"cores":`...)
		b = strconv.AppendInt(b, r.num[0], 10)
		b = append(b, `,"sockets":1}`...)
		b = appendInt(b, "memory", r.num[1])
		b = appendRef(b, "cluster", r.ref[0])
		b = appendRef(b, "host", r.ref[1])
		b = appendBool(b, "ha", r.flag)
		b = append(b, `,"guest_os_type":"LINUX","firmware":"BIOS"`...)
		tools := "NOT_RUNNING"
		if r.status == 0 {
			tools = "RUNNING"
		}
		b = appendField(b, "vm_tools_status", tools)
		b = append(b, `,"in_recycle_bin":false,"internal":false,"protected":false,"description":""`...)
		b = appendField(b, "local_id", r.localID)
	case kHost:
		b = appendField(b, "name", r.name)
		b = appendField(b, "status", hostStatus[r.status])
		b = appendField(b, "state", hostState[r.state])
		b = appendRef(b, "cluster", r.ref[0])
		b = appendField(b, "cpu_model", cpuModels[r.num[2]])
		b = appendField(b, "cpu_brand", cpuBrands[r.num[2]])
		b = appendInt(b, "total_cpu_cores", r.num[0])
		b = appendInt(b, "total_memory_bytes", r.num[1])
		b = appendIP(b, "management_ip", 0, r.name)
		b = appendBool(b, "nested_virtualization", r.flag)
		b = appendField(b, "local_id", r.localID)
	case kCluster:
		b = appendField(b, "name", r.name)
		b = append(b, `,"type":"SMTX_OS","hypervisor":"ELF","architecture":"X86_64"`...)
		b = appendField(b, "version", osVersions[r.state])
		b = appendField(b, "connect_state", connStates[r.status])
		b = appendIP(b, "ip", 1, r.name)
		b = appendInt(b, "total_cpu_cores", r.num[0])
		b = appendInt(b, "total_data_capacity", r.num[1])
		b = appendInt(b, "used_data_space", r.num[2])
		b = append(b, `,"ntp_mode":"EXTERNAL"`...)
		b = appendBool(b, "auto_converge", r.flag)
		b = appendField(b, "local_id", r.localID)
	case kVMVolume:
		b = appendField(b, "name", r.name)
		b = appendRef(b, "cluster", r.ref[0])
		b = appendInt(b, "size", r.num[0])
		b = appendInt(b, "unique_size", r.num[1])
		b = appendField(b, "elf_storage_policy", policies[r.num[2]])
		b = appendBool(b, "mounting", r.flag)
		b = append(b, `,"sharing":false,"path":"/usr/share/smartx/volumes/`...)
		b = append(b, r.localID...)
		b = append(b, '"')
		b = appendField(b, "local_id", r.localID)
		b = append(b, `,"local_created_at":"`...)
		b = appendTime(b, time.UnixMilli(r.created))
		b = append(b, '"')
	case kVMNic:
		b = appendField(b, "local_id", r.localID)
		b = appendRef(b, "vm", r.ref[0])
		b = appendRef(b, "vlan", r.ref[1])
		b = append(b, `,"mac_address":"52:54:00`...)
		for sh := 16; sh >= 0; sh -= 8 {
			v := byte(r.num[0] >> sh)
			b = append(b, ':', hexDigits[v>>4], hexDigits[v&0xf])
		}
		b = append(b, `","ip_address":"10.2.`...)
		b = strconv.AppendInt(b, r.num[1]/250, 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, 1+r.num[1]%250, 10)
		b = append(b, `","subnet_mask":"255.255.0.0","gateway":"10.2.0.1","model":"VIRTIO","mirror":false`...)
		b = appendBool(b, "enabled", r.flag)
	case kLabel:
		b = appendField(b, "key", labelKeys[r.status])
		b = appendField(b, "value", labelValues[r.state])
		b = append(b, `,"createdAt":"`...)
		b = appendTime(b, time.UnixMilli(r.created))
		b = append(b, '"')
	case kLabelToVM:
		b = appendField(b, "A", r.ref[0].id)
		b = appendField(b, "B", r.ref[1].id)
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

func appendBool(b []byte, key string, v bool) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":`...)
	return strconv.AppendBool(b, v)
}

// appendRef appends a nested object as the SDK's Nested* models have it:
// id and name (and a host's management_ip).
func appendRef(b []byte, key string, r *resource) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":{"id":"`...)
	b = append(b, r.id...)
	b = append(b, `","name":"`...)
	b = append(b, r.name...)
	b = append(b, '"')
	if key == "host" {
		b = appendIP(b, "management_ip", 0, r.name)
	}
	return append(b, '}')
}

// appendIP appends an address derived from a name's number.
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

// appendPadded appends v in decimal, zero-padded to width digits.
func appendPadded(b []byte, v int64, width int) []byte {
	var d [20]byte
	s := strconv.AppendInt(d[:0], v, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}
