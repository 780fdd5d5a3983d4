package watchor_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/smartxworks/cloudtower-go-sdk/v2/client"
	resource_change_client "github.com/smartxworks/cloudtower-go-sdk/v2/client/resource_change"

	"github.com/towerwatch/towerwatch/source/cloudtower"
	"github.com/towerwatch/towerwatch/source/cloudtower/watchor"
	"github.com/towerwatch/towerwatch/testutil/fakeserver"
)

// A client over a (fake) CloudTower on loopback HTTP: read the changes
// after revision 1, then stop.
func Example() {
	s := fakeserver.New(fakeserver.Config{})
	defer s.Close()
	s.StartHTTP()
	s.Append(
		fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: fakeserver.TypeVM, ResourceID: "vm-1"},
		fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: fakeserver.TypeHost, ResourceID: "host-1"},
		fakeserver.Event{Action: fakeserver.ActionUpdate, ResourceType: fakeserver.TypeVM, ResourceID: "vm-1"},
		fakeserver.Event{Action: fakeserver.ActionDelete, ResourceType: fakeserver.TypeVM, ResourceID: "vm-1"},
	)

	c, err := cloudtower.Dial(context.Background(), cloudtower.Config{
		Host: s.URL(), Username: s.Username(), Password: s.Password(), APIUsername: s.APIUsername(), APIPassword: s.APIPassword(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer cloudtower.CloseIdleConnections(c)

	w, err := watchor.NewResourceChangeWatchClient(&watchor.NewResourceChangeWatchClientParams{
		Client:        c,
		ResourceTypes: []string{fakeserver.TypeVM},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	after := "1"
	if err := w.Start(&watchor.ResourceChangeWatchStartParams{StartRevision: &after}); err != nil {
		fmt.Println(err)
		return
	}
	defer w.Stop()
	for range 2 {
		select {
		case ev := <-w.Channel():
			fmt.Println(*ev.Revision, *ev.ResourceType, *ev.Action, *ev.ResourceID)
		case e := <-w.ErrorChannel():
			fmt.Println("stopped:", e.Type, e.Err)
			return
		}
	}
	// Output:
	// 3 Vm UPDATE vm-1
	// 4 Vm DELETE vm-1
}

// usageDocumentExample is the example of the SDK's usage document
// (seed/watch-client-usage.zh.md, "使用示例"), unchanged but for the import
// path: it compiles against this package as is. Its free variables are
// the parameters; afterwards runs at the end, before the deferred Stop.
func usageDocumentExample(cloudtowerClient *client.Cloudtower, clientOptions resource_change_client.ClientOption, afterwards func()) {
	// ---- verbatim from the usage document ----
	// 创建客户端
	params := &watchor.NewResourceChangeWatchClientParams{
		Client:          cloudtowerClient,
		ClientOptions:   clientOptions,
		MaxRetries:      5,
		ResourceTypes:   []string{"VM", "HOST"},
		PollingInterval: 2 * time.Second,
	}
	watchClient, err := watchor.NewResourceChangeWatchClient(params)
	if err != nil {
		log.Fatalf("创建监控客户端失败: %v", err)
	}

	// 启动客户端
	startParams := &watchor.ResourceChangeWatchStartParams{
		StartRevision: nil, // 从最新的修订版本开始
	}
	if err := watchClient.Start(startParams); err != nil {
		log.Fatalf("启动监控客户端失败: %v", err)
	}

	// 处理各种事件
	go func() {
		for {
			select {
			case event, ok := <-watchClient.Channel():
				if !ok {
					return // 通道已关闭
				}
				log.Printf("收到资源变更事件: %v", event)

			case warning, ok := <-watchClient.WarningChannel():
				if !ok {
					return // 通道已关闭
				}
				log.Printf("警告: %v", warning.Err)

			case err, ok := <-watchClient.ErrorChannel():
				if !ok {
					return // 通道已关闭
				}
				if err.Type == watchor.ErrorEventTypeCompacted {
					log.Printf("请求的修订版本已被压缩，压缩版本: %s", *err.CompactRevision)
					// 可以使用压缩版本重新启动客户端
				} else {
					log.Printf("错误: %v", err.Err)
				}
				return // 发生错误，客户端已停止
			}
		}
	}()

	// 使用完毕后停止客户端
	defer watchClient.Stop()
	// ---- end of the usage document's example ----

	afterwards()
}

// TestUsageDocumentExample runs the usage document's example against the
// fake server in a synctest bubble: it starts from now, logs the changes
// of the watched types made after Start, and a warning, and its consumer
// goroutine ends after the deferred Stop.
func TestUsageDocumentExample(t *testing.T) {
	var out bytes.Buffer
	log.SetOutput(&out)
	log.SetFlags(0)
	defer func() {
		log.SetOutput(defaultLogOutput)
		log.SetFlags(log.LstdFlags)
	}()
	synctest.Test(t, func(t *testing.T) {
		s := fakeserver.New(fakeserver.Config{Seed: 20})
		defer s.Close()
		s.Generate(100) // before Start: not delivered
		opt := cloudtower.WithHeader("x-request-source", "usage-example")
		usageDocumentExample(memoryClient(t, s, ""), opt, func() {
			synctest.Wait() // the client knows the head and waits 2 s
			// The usage document spells the types "VM" and "HOST" (a real
			// CloudTower says "Vm" and "Host"); these changes use its spelling.
			s.Append(
				fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: "VM", ResourceID: "vm-new"},
				fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: fakeserver.TypeVMVolume, ResourceID: "vol-new"},
				fakeserver.Event{Action: fakeserver.ActionInsert, ResourceType: "HOST", ResourceID: "host-new"},
			)
			s.InjectFaults(fakeserver.Fault503)
			time.Sleep(10 * time.Second) // fake time: a failed poll, a retry, the changes
			synctest.Wait()
		})
		for _, r := range s.Requests() {
			if r.ResourceType != "VM,HOST" {
				t.Errorf("a request asked for resource_type %q, want \"VM,HOST\"", r.ResourceType)
			}
		}
	})
	logged := out.String()
	if n := strings.Count(logged, "收到资源变更事件"); n != 2 {
		t.Errorf("want the 2 VM and HOST changes made after Start logged, got %d:\n%s", n, logged)
	}
	if n := strings.Count(logged, "警告: "); n != 1 || !strings.Contains(logged, "503") {
		t.Errorf("want one warning for the 503 logged, got %d:\n%s", n, logged)
	}
	if strings.Contains(logged, "错误") {
		t.Errorf("an error was logged:\n%s", logged)
	}
}

var defaultLogOutput = log.Writer()
