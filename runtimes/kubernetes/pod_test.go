package kubernetes

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"corral/runtimes"
)

func TestPodSpecCarriesTheContract(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Labels = map[string]string{"team": "a", LabelManaged: "false"}
	cfg.NodeSelector = map[string]string{"disk": "ssd"}
	cfg.Tolerations = []Toleration{{Key: "k", Operator: "Exists", Effect: "NoSchedule"}}
	cfg.RuntimeClass, cfg.ServiceAccount = "gvisor", "sandboxes"
	uid := int64(1000)
	cfg.RunAsUser, cfg.FSGroup = &uid, &uid
	owner := runtimes.Owner{ID: "store/with spaces", Instance: "i-1", Host: "h", LockPath: "/l/LOCK", Durable: true}
	spec := runtimes.Spec{
		SessionID: "Sess:1/x", Env: map[string]string{"B": "2", "A": "1"}, User: "openhands", WorkDir: "/src",
		Labels: map[string]string{"app": "x", LabelSession: "forged", runtimes.MetaOwnerID: "forged"},
		Owner:  owner, Resources: runtimes.Resources{MemoryBytes: 64 << 20, NanoCPUs: 500_000_000},
	}
	pod, err := buildPod(cfg, spec, podParams{name: "corral-p-abcdef", token: "tok", node: "node 1"})
	if err != nil {
		t.Fatal(err)
	}
	ps := pod.Spec
	if len(ps.InitContainers) != 1 || len(ps.Containers) != 1 {
		t.Fatalf("containers: %d init, %d; want 1 and 1", len(ps.InitContainers), len(ps.Containers))
	}
	ic, c := ps.InitContainers[0], ps.Containers[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"init name", ic.Name, installContainer},
		{"init image", ic.Image, DefaultAgentImage},
		{"init command", ic.Command, []string{"/corral-agent", "--copy-to", "/.corral/corral-agent"}},
		{"sandbox name", c.Name, sandboxContainer},
		{"sandbox image (config default)", c.Image, DefaultImage},
		{"sandbox command", c.Command, []string{AgentPath, "--listen", "127.0.0.1:7777", "--workdir", "/src", "--user", "openhands"}},
		{"env sorted, token last", c.Env, []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}, {Name: tokenEnv, Value: "tok"}}},
		{"pull policy", c.ImagePullPolicy, corev1.PullIfNotPresent},
		{"init pull policy", ic.ImagePullPolicy, corev1.PullIfNotPresent},
		{"restart policy", ps.RestartPolicy, corev1.RestartPolicyNever},
		{"no SA token", *ps.AutomountServiceAccountToken, false},
		{"no service links", *ps.EnableServiceLinks, false},
		{"grace", *ps.TerminationGracePeriodSeconds, int64(5)},
		{"node selector", ps.NodeSelector, map[string]string{"disk": "ssd"}},
		{"runtime class", *ps.RuntimeClassName, "gvisor"},
		{"service account", ps.ServiceAccountName, "sandboxes"},
		{"run as user", *ps.SecurityContext.RunAsUser, int64(1000)},
		{"toleration", ps.Tolerations, []corev1.Toleration{{Key: "k", Operator: "Exists", Effect: "NoSchedule"}}},
		{"memory limit", c.Resources.Limits.Memory().Value(), int64(64 << 20)},
		{"cpu request = limit", c.Resources.Requests.Cpu().MilliValue(), int64(500)},
		{"init limits (quota)", ic.Resources.Limits.Memory().Value(), int64(64 << 20)},
		{"managed", pod.Labels[LabelManaged], "true"},
		{"config label", pod.Labels["team"], "a"},
		{"spec label", pod.Labels["app"], "x"},
		{"exact session", pod.Annotations[AnnotationSession], "Sess:1/x"},
		{"owner annotation exact", pod.Annotations[runtimes.MetaOwnerID], "store/with spaces"},
		{"owner lock annotation", pod.Annotations[runtimes.MetaOwnerLock], "/l/LOCK"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if got, ok := runtimes.OwnerFromMeta(pod.Annotations); !ok || got != owner {
		t.Errorf("owner read back from annotations = %+v, %v; want %+v", got, ok, owner)
	}
	for k, v := range pod.Labels {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("label %s = %q invalid: %v", k, v, errs)
		}
	}
	if pod.Labels[LabelSession] == "forged" || pod.Labels[LabelOwner] == "forged" {
		t.Errorf("a spec's labels overrode Corral's own: %v", pod.Labels)
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	if !slices.Equal(mounts, []string{AgentDir, WorkspaceDir}) {
		t.Errorf("sandbox mounts = %v", mounts)
	}
	if ps.Volumes[1].EmptyDir == nil {
		t.Errorf("workspace without workspace_size is %+v, want an emptyDir", ps.Volumes[1])
	}
}

func TestPodSpecVariants(t *testing.T) {
	tests := []struct {
		name  string
		cfg   func(*Config)
		spec  runtimes.Spec
		pvc   string
		check func(t *testing.T, pod *corev1.Pod)
	}{
		{"pod-ip listens on all addresses in plain text", func(c *Config) { c.Connect = ConnectPodIP }, runtimes.Spec{}, "",
			func(t *testing.T, pod *corev1.Pod) {
				cmd := pod.Spec.Containers[0].Command
				if !slices.Contains(cmd, "0.0.0.0:7777") || !slices.Contains(cmd, "--insecure-plaintext") {
					t.Errorf("command %v", cmd)
				}
			}},
		{"no user, default workdir", nil, runtimes.Spec{}, "",
			func(t *testing.T, pod *corev1.Pod) {
				if cmd := pod.Spec.Containers[0].Command; slices.Contains(cmd, "--user") || cmd[4] != WorkspaceDir {
					t.Errorf("command %v", cmd)
				}
			}},
		{"config resources when the spec sets none", func(c *Config) { c.CPU, c.Memory = "250m", "1Gi" }, runtimes.Spec{}, "",
			func(t *testing.T, pod *corev1.Pod) {
				l := pod.Spec.Containers[0].Resources.Limits
				if !l.Cpu().Equal(resource.MustParse("250m")) || !l.Memory().Equal(resource.MustParse("1Gi")) {
					t.Errorf("limits %v", l)
				}
			}},
		{"no resources at all", nil, runtimes.Spec{}, "",
			func(t *testing.T, pod *corev1.Pod) {
				if r := pod.Spec.Containers[0].Resources; len(r.Limits)+len(r.Requests) != 0 {
					t.Errorf("resources %v", r)
				}
			}},
		{"spec image and pull policy Never", func(c *Config) { c.ImagePullPolicy = "Never" }, runtimes.Spec{Image: "x:1"}, "",
			func(t *testing.T, pod *corev1.Pod) {
				c := pod.Spec.Containers[0]
				if c.Image != "x:1" || c.ImagePullPolicy != corev1.PullNever || pod.Spec.InitContainers[0].ImagePullPolicy != corev1.PullNever {
					t.Errorf("image %s, policies %s/%s", c.Image, c.ImagePullPolicy, pod.Spec.InitContainers[0].ImagePullPolicy)
				}
			}},
		{"workspace claim", nil, runtimes.Spec{}, "corral-x-workspace",
			func(t *testing.T, pod *corev1.Pod) {
				v := pod.Spec.Volumes[1]
				if v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "corral-x-workspace" || pod.Annotations[AnnotationWorkspacePVC] != "corral-x-workspace" {
					t.Errorf("workspace volume %+v, annotations %v", v, pod.Annotations)
				}
			}},
		{"no owner: no owner label or lease", nil, runtimes.Spec{}, "",
			func(t *testing.T, pod *corev1.Pod) {
				if _, ok := pod.Labels[LabelOwner]; ok {
					t.Errorf("labels %v", pod.Labels)
				}
				if _, ok := runtimes.OwnerFromMeta(pod.Annotations); ok {
					t.Errorf("annotations %v", pod.Annotations)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			tt.spec.SessionID = "s"
			pod, err := buildPod(cfg, tt.spec, podParams{name: "corral-s-000000", token: "t", node: "n", pvc: tt.pvc})
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, pod)
		})
	}
}

func TestNamesAndLabelValuesAreValid(t *testing.T) {
	long := strings.Repeat("ab/", 40)
	for _, id := range []string{"simple", "Sess:1/x", long, "////", "", "-x-", "ünïcode", strings.Repeat("a", 63), strings.Repeat("a", 64)} {
		name := podName(id, "abcdef")
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("podName(%q) = %q: %v", id, name, errs)
		}
		v := labelValue(id)
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("labelValue(%q) = %q: %v", id, v, errs)
		}
	}
	if labelValue("simple") != "simple" {
		t.Errorf("a valid value changed: %q", labelValue("simple"))
	}
	if labelValue(long+"1") == labelValue(long+"2") {
		t.Error("two long ids that differ only at the end share a label value")
	}
}

func TestBadSpecsAreRefusedNamingTheField(t *testing.T) {
	tests := []struct {
		name string
		spec runtimes.Spec
		want string
	}{
		{"no session", runtimes.Spec{}, "SessionID"},
		{"host workspace", runtimes.Spec{SessionID: "s", Workspace: "/home/me"}, "workspace_size"},
		{"host volumes", runtimes.Spec{SessionID: "s", Volumes: []string{"/a:/b"}}, "volumes"},
		{"token env", runtimes.Spec{SessionID: "s", Env: map[string]string{tokenEnv: "x"}}, "reserved"},
		{"env name with =", runtimes.Spec{SessionID: "s", Env: map[string]string{"A=B": "x"}}, `"A=B"`},
		{"bad label value", runtimes.Spec{SessionID: "s", Labels: map[string]string{"app": "has space"}}, "label app"},
		{"bad label key", runtimes.Spec{SessionID: "s", Labels: map[string]string{"a b": "x"}}, `label key "a b"`},
		{"negative memory", runtimes.Spec{SessionID: "s", Resources: runtimes.Resources{MemoryBytes: -1}}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSpec(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("checkSpec = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
	if err := checkSpec(runtimes.Spec{SessionID: "s", Labels: map[string]string{runtimes.MetaOwnsWorkspace: "true"}}); err != nil {
		t.Errorf("a valid spec: %v", err)
	}
}
