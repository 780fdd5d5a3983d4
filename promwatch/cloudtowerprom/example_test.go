package cloudtowerprom_test

import (
	"fmt"

	"github.com/smartxworks/cloudtower-go-sdk/v2/models"

	"github.com/towerwatch/towerwatch/promwatch/cloudtowerprom"
)

func ptr(s string) *string { return &s }

// Labels counts a change under its resource type and action, never its
// resource id.
func ExampleLabels() {
	ev := &models.ResourceChangeEvent{ResourceType: ptr("Vm"), Action: ptr("UPDATE"), ResourceID: ptr("ckx1vm01")}
	fmt.Println(cloudtowerprom.Labels(ev))
	fmt.Println(cloudtowerprom.Labels(&models.ResourceChangeEvent{}))
	// Output:
	// Vm UPDATE
	// unknown unknown
}
