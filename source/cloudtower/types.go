package cloudtower

import (
	"slices"
	"strings"
)

// knownTypes are resource types as CloudTower spells them in the
// resource-change feed: the model names of the SDK's services (client/vm
// is Vm, client/vm_volume is VmVolume, ...), and the relations the one
// public production user watches (_LabelToVm, _SecurityGroupToVm). Sorted
// ignoring a leading underscore.
var knownTypes = []string{
	"Alert", "AlertNotifier", "AlertRule", "Application", "BackupPlan",
	"BackupPlanExecution", "BackupRestoreExecution", "BackupRestorePoint",
	"BackupStoreRepository", "BackupTargetExecution", "CloudTowerApplication",
	"CloudTowerApplicationPackage", "Cluster", "ClusterImage", "ClusterUpgradeHistory",
	"ConsistencyGroup", "ConsistencyGroupSnapshot", "ContentLibraryImage",
	"ContentLibraryVmTemplate", "Datacenter", "DiscoveredHost", "Disk", "ElfDataStore",
	"ElfImage", "ElfStoragePolicy", "EntityFilter", "EverouteCluster", "EverouteLicense",
	"EveroutePackage", "GlobalAlertRule", "GpuDevice", "Host", "Ipmi", "IscsiConnection",
	"IscsiLun", "IscsiLunSnapshot", "IscsiTarget", "IsolationPolicy", "Label", "_LabelToVm",
	"License", "LogCollection", "NamespaceGroup", "NetworkPolicyRuleService", "NfsExport",
	"NfsInode", "Nic", "NvmfNamespace", "NvmfNamespaceSnapshot", "NvmfSubsystem",
	"Organization", "PciDevice", "PmemDimm", "ReplicaVm", "ReplicationPlan", "ReportTask",
	"ReportTemplate", "SecurityGroup", "_SecurityGroupToVm", "SecurityPolicy", "SmtpServer",
	"SnapshotGroup", "SnapshotPlan", "SnapshotPlanTask", "SnmpTransport",
	"SnmpTrapReceiver", "SvtImage", "SystemAuditLog", "Task", "UsbDevice", "User",
	"UserAuditLog", "VcenterAccount", "Vds", "View", "VirtualPrivateCloud",
	"VirtualPrivateCloudClusterBinding", "VirtualPrivateCloudEdgeGateway",
	"VirtualPrivateCloudEdgeGatewayGroup", "VirtualPrivateCloudExternalSubnet",
	"VirtualPrivateCloudExternalSubnetGroup", "VirtualPrivateCloudFloatingIp",
	"VirtualPrivateCloudNatGateway", "VirtualPrivateCloudRouteTable",
	"VirtualPrivateCloudRouterGateway", "VirtualPrivateCloudSecurityGroup",
	"VirtualPrivateCloudSecurityPolicy", "VirtualPrivateCloudSubnet", "Vlan", "Vm",
	"VmDisk", "VmExportFile", "VmFolder", "VmNic", "VmPlacementGroup", "VmSnapshot",
	"VmTemplate", "VmVolume", "VmVolumeSnapshot", "VsphereEsxiAccount", "Witness", "Zone",
}

// KnownResourceTypes returns resource types as CloudTower spells them
// (case-sensitive model names such as "Vm", "Host", "VmVolume", and
// relations such as "_LabelToVm"): a curated list, taken from the SDK's
// service names and what the production user Everoute watches. The
// server's list is open: a type missing here may still exist, so use it to
// suggest a spelling (SuggestResourceType), never to refuse one.
func KnownResourceTypes() []string { return slices.Clone(knownTypes) }

// SuggestResourceType returns the known spelling of a resource type that
// differs from it only by case or underscores ("VM", "vm" -> "Vm";
// "VM_VOLUME" -> "VmVolume"), and ok=false when name is spelled as a known
// type already, or resembles none.
func SuggestResourceType(name string) (suggestion string, ok bool) {
	if slices.Contains(knownTypes, name) {
		return "", false
	}
	key := foldType(name)
	for _, t := range knownTypes {
		if foldType(t) == key {
			return t, true
		}
	}
	return "", false
}

func foldType(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "_", ""))
}
