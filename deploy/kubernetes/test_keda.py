"""Offline checks of deploy/kubernetes that a schema cannot make.

Run by dev/check-kubernetes (which first validates the built-in kinds with
kubernetes-validate); alone:

    python3 -m unittest deploy/kubernetes/test_keda.py      (needs PyYAML)

JOBSTREAM_K8S_DIR=<dir> checks another copy of the folder (dev/check-kubernetes
uses it to prove that a broken copy fails).

KEDA objects (ScaledObject, TriggerAuthentication, the redis-streams trigger)
are checked against KEDA's documentation (keda.sh, docs 2.21: reference/
scaledobject-spec, concepts/authentication, scalers/redis-streams): the
documented keys only, required fields, value types. The ServiceMonitor against
the Prometheus Operator's API reference (monitoring.coreos.com/v1), a few
structural checks. And the cross-references between the objects: the stream
key KEDA watches is the worker's queue, the Secret keys named exist, the
grace-period rule holds for the worker's own arguments.
"""

import os
import re
import unittest
from urllib.parse import unquote, urlsplit

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.environ.get("JOBSTREAM_K8S_DIR") or HERE

# docs/configuration.md: shutdown_grace default 30 s, shutdown_flush 5 s.
DEFAULT_SHUTDOWN_GRACE_S = 30.0
SHUTDOWN_FLUSH_S = 5.0
# The margin of the grace rule (deploy/kubernetes/README.md).
MIN_MARGIN_S = 5.0
CONSUMER_GROUP = "workers"  # docs/wire-format.md, the workers' group
DEFAULT_PREFIX = "jobstream"

# --- KEDA's documented fields ------------------------------------------------
SCALEDOBJECT_SPEC_KEYS = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod",
    "initialCooldownPeriod", "idleReplicaCount", "minReplicaCount",
    "maxReplicaCount", "fallback", "advanced", "triggers",
}
SCALEDOBJECT_INT_KEYS = {
    "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount",
}
SCALE_TARGET_REF_KEYS = {"apiVersion", "kind", "name", "envSourceContainerName"}
TRIGGER_KEYS = {"type", "metadata", "name", "useCachedMetrics",
                "authenticationRef", "metricType"}
AUTH_REF_KEYS = {"name", "kind"}
AUTH_REF_KINDS = {"TriggerAuthentication", "ClusterTriggerAuthentication"}
METRIC_TYPES = {"AverageValue", "Value"}  # Utilization: cpu/memory only
REDIS_STREAMS_METADATA = {
    "address", "host", "port", "usernameFromEnv", "passwordFromEnv",
    "stream", "consumerGroup", "pendingEntriesCount", "streamLength",
    "lagCount", "activationLagCount", "enableTLS", "unsafeSsl",
    "databaseIndex", "addressFromEnv", "hostFromEnv", "portFromEnv",
}
REDIS_STREAMS_COUNTS = ("pendingEntriesCount", "streamLength", "lagCount")
REDIS_STREAMS_AUTH_PARAMS = {"username", "password", "tls", "ca", "cert",
                             "key", "keyPassword"}
TRIGGER_AUTH_SPEC_KEYS = {
    "podIdentity", "secretTargetRef", "env", "configMapTargetRef",
    "hashiCorpVault", "azureKeyVault", "awsSecretManager", "gcpSecretManager",
    "boundServiceAccountToken", "oauth2", "filePath",
}
SECRET_TARGET_REF_KEYS = {"parameter", "name", "key"}

# --- Prometheus Operator ServiceMonitor (a documented subset) ---------------
SERVICEMONITOR_SPEC_KEYS = {
    "selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels",
    "podTargetLabels", "sampleLimit", "targetLimit", "labelLimit",
    "labelNameLengthLimit", "labelValueLengthLimit", "attachMetadata",
    "scrapeProtocols", "bodySizeLimit", "scrapeClass", "selectorMechanism",
    "keepDroppedTargets", "fallbackScrapeProtocol",
}
ENDPOINT_KEYS = {
    "port", "targetPort", "path", "scheme", "params", "interval",
    "scrapeTimeout", "honorLabels", "honorTimestamps", "trackTimestampsStaleness",
    "metricRelabelings", "relabelings", "tlsConfig", "bearerTokenSecret",
    "authorization", "basicAuth", "oauth2", "proxyUrl", "followRedirects",
    "enableHttp2", "filterRunning", "noProxy", "proxyFromEnvironment",
    "proxyConnectHeader",
}
# Prometheus duration, as the operator's CRD pattern has it.
PROM_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?"
    r"(([0-9]+)s)?(([0-9]+)ms)?)$")
DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")
UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400,
          "w": 604800, "y": 31536000}
INT_STRING = re.compile(r"^[0-9]+$")
ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def prom_seconds(text):
    return sum(int(n) * UNIT_S[u] for n, u in DURATION_PART.findall(text))


def load_dir(directory):
    """The base's resources (from kustomization.yaml) and the monitoring
    component's, each as (file, object)."""
    def load_kustomization(d):
        with open(os.path.join(d, "kustomization.yaml"), encoding="utf-8") as f:
            return yaml.safe_load(f)

    def load_files(d, names):
        out = []
        for name in names:
            with open(os.path.join(d, name), encoding="utf-8") as f:
                for doc in yaml.safe_load_all(f):
                    if doc:
                        out.append((name, doc))
        return out

    base_k = load_kustomization(directory)
    base = load_files(directory, base_k.get("resources") or [])
    mon_dir = os.path.join(directory, "monitoring")
    mon_k = load_kustomization(mon_dir)
    monitoring = load_files(mon_dir, mon_k.get("resources") or [])
    return base_k, base, mon_k, monitoring


class Manifests:
    def __init__(self, directory):
        (self.kustomization, self.base, self.component,
         self.monitoring) = load_dir(directory)
        self.objects = [o for _, o in self.base]

    def of_kind(self, kind, objects=None):
        return [o for o in (self.objects if objects is None else objects)
                if isinstance(o, dict) and o.get("kind") == kind]

    def named(self, kind, name):
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        return found[0] if found else None

    def secret_data(self, name):
        secret = self.named("Secret", name)
        if secret is None:
            return None
        data = dict(secret.get("stringData") or {})
        for k, v in (secret.get("data") or {}).items():
            import base64
            data[k] = base64.b64decode(v).decode()
        return data

    def configmap_data(self, name):
        cm = self.named("ConfigMap", name)
        return None if cm is None else dict(cm.get("data") or {})

    def worker(self):
        found = [d for d in self.of_kind("Deployment")
                 if d["metadata"].get("labels", {}).get(
                     "app.kubernetes.io/component") == "worker"]
        return found[0] if len(found) == 1 else None

    def container_env(self, container):
        """The environment a container sees: envFrom (ConfigMaps, Secrets),
        then env (literal values and secretKeyRef/configMapKeyRef), as
        KEDA resolves it for *FromEnv parameters."""
        env = {}
        for src in container.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                data = self.configmap_data(src["configMapRef"]["name"]) or {}
            else:
                data = self.secret_data(src["secretRef"]["name"]) or {}
            env.update({prefix + k: v for k, v in data.items()})
        for e in container.get("env") or []:
            if "value" in e:
                env[e["name"]] = ENV_REF.sub(
                    lambda m: str(env.get(m.group(1), m.group(0))), str(e["value"]))
            else:
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    data = self.secret_data(ref["secretKeyRef"]["name"]) or {}
                    env[e["name"]] = data.get(ref["secretKeyRef"]["key"])
                elif "configMapKeyRef" in ref:
                    data = self.configmap_data(ref["configMapKeyRef"]["name"]) or {}
                    env[e["name"]] = data.get(ref["configMapKeyRef"]["key"])
        return env

    def argv(self, container):
        """command + args with $(VAR) expanded as the kubelet does."""
        env = self.container_env(container)
        words = list(container.get("command") or []) + list(container.get("args") or [])
        return [ENV_REF.sub(lambda m: str(env.get(m.group(1), m.group(0))), str(w))
                for w in words]


def flag(argv, name, default=None):
    for i, w in enumerate(argv):
        if w == name and i + 1 < len(argv):
            return argv[i + 1]
        if w.startswith(name + "="):
            return w.split("=", 1)[1]
    return default


def selector_matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class Base(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = Manifests(DIR)
        cls.worker = cls.m.worker()
        if cls.worker is None:
            raise AssertionError("no single Deployment labelled "
                                 "app.kubernetes.io/component: worker")
        cls.worker_container = cls.worker["spec"]["template"]["spec"]["containers"][0]
        cls.worker_argv = cls.m.argv(cls.worker_container)
        cls.worker_env = cls.m.container_env(cls.worker_container)

    def queue_and_prefix(self):
        queue = flag(self.worker_argv, "--queue")
        self.assertIsNotNone(queue, "the worker's command names no --queue")
        self.assertNotIn("$(", queue, "the worker's --queue refers to an undefined variable")
        prefix = flag(self.worker_argv, "--prefix", DEFAULT_PREFIX)
        return queue, prefix

    def redis_url(self):
        url = self.worker_env.get("REDIS_URL")
        self.assertTrue(url, "the worker has no REDIS_URL")
        return urlsplit(url)


class ScaledObjectTest(Base):
    def scaled_objects(self):
        sos = self.m.of_kind("ScaledObject")
        self.assertTrue(sos, "no ScaledObject")
        return sos

    def test_documented_fields_and_types(self):
        for so in self.scaled_objects():
            name = so["metadata"].get("name")
            self.assertEqual(so.get("apiVersion"), "keda.sh/v1alpha1", name)
            self.assertIsInstance(name, str)
            spec = so.get("spec")
            self.assertIsInstance(spec, dict, name)
            self.assertLessEqual(set(spec), SCALEDOBJECT_SPEC_KEYS,
                                 f"{name}: undocumented spec keys")
            for key in SCALEDOBJECT_INT_KEYS & set(spec):
                self.assertIs(type(spec[key]), int, f"{name}: {key} must be an integer")
                self.assertGreaterEqual(spec[key], 0, f"{name}: {key}")
            ref = spec.get("scaleTargetRef")
            self.assertIsInstance(ref, dict, f"{name}: scaleTargetRef is mandatory")
            self.assertLessEqual(set(ref), SCALE_TARGET_REF_KEYS, name)
            self.assertIsInstance(ref.get("name"), str, f"{name}: scaleTargetRef.name is mandatory")
            triggers = spec.get("triggers")
            self.assertIsInstance(triggers, list, f"{name}: triggers")
            self.assertTrue(triggers, f"{name}: no trigger")
            names = [t.get("name") for t in triggers if t.get("name")]
            self.assertEqual(len(names), len(set(names)), f"{name}: trigger names repeat")
            for t in triggers:
                self.assertLessEqual(set(t), TRIGGER_KEYS, f"{name}: undocumented trigger keys")
                self.assertIsInstance(t.get("type"), str, f"{name}: trigger type is mandatory")
                md = t.get("metadata")
                self.assertIsInstance(md, dict, f"{name}: trigger metadata is mandatory")
                for k, v in md.items():
                    self.assertIsInstance(v, str, f"{name}: metadata.{k} must be a string "
                                          "(KEDA's metadata is a map of strings: quote numbers)")
                if "metricType" in t:
                    self.assertIn(t["metricType"], METRIC_TYPES, name)
                if "useCachedMetrics" in t:
                    self.assertIsInstance(t["useCachedMetrics"], bool, name)
                ar = t.get("authenticationRef")
                if ar is not None:
                    self.assertLessEqual(set(ar), AUTH_REF_KEYS, name)
                    self.assertIn(ar.get("kind", "TriggerAuthentication"), AUTH_REF_KINDS)
                    if ar.get("kind", "TriggerAuthentication") == "TriggerAuthentication":
                        self.assertIsNotNone(
                            self.m.named("TriggerAuthentication", ar.get("name")),
                            f"{name}: authenticationRef names no TriggerAuthentication here")

    def test_replica_bounds(self):
        for so in self.scaled_objects():
            spec = so["spec"]
            lo = spec.get("minReplicaCount", 0)
            hi = spec.get("maxReplicaCount", 100)
            self.assertEqual(lo, 0, "the workers scale to zero (minReplicaCount 0)")
            self.assertGreaterEqual(hi, max(1, lo))
            if "idleReplicaCount" in spec:
                self.assertLess(spec["idleReplicaCount"], lo)

    def test_targets_the_worker_deployment(self):
        targets = []
        for so in self.scaled_objects():
            ref = so["spec"]["scaleTargetRef"]
            self.assertEqual(ref.get("kind", "Deployment"), "Deployment")
            self.assertEqual(ref.get("apiVersion", "apps/v1"), "apps/v1")
            self.assertEqual(ref["name"], self.worker["metadata"]["name"],
                             "scaleTargetRef must name the worker Deployment")
            if "envSourceContainerName" in ref:
                self.assertIn(ref["envSourceContainerName"],
                              [c["name"] for c in self.worker["spec"]["template"]["spec"]["containers"]])
            targets.append(ref["name"])
        self.assertEqual(len(targets), len(set(targets)),
                         "KEDA allows one ScaledObject per target")
        self.assertNotIn("replicas", self.worker["spec"],
                         "KEDA owns the worker's replica count: set no `replicas`")


class RedisStreamsTriggerTest(Base):
    def triggers(self):
        out = []
        for so in self.m.of_kind("ScaledObject"):
            for t in so["spec"]["triggers"]:
                self.assertEqual(t["type"], "redis-streams",
                                 "only redis-streams triggers are expected here")
                out.append((so, t))
        self.assertTrue(out)
        return out

    def auth_params(self, trigger):
        """parameter -> (secret, key) of the trigger's TriggerAuthentication."""
        ar = trigger.get("authenticationRef")
        if not ar:
            return {}
        ta = self.m.named("TriggerAuthentication", ar["name"])
        return {r["parameter"]: (r["name"], r["key"])
                for r in ta["spec"].get("secretTargetRef") or []}

    def test_documented_metadata(self):
        for _, t in self.triggers():
            md = t["metadata"]
            self.assertLessEqual(set(md), REDIS_STREAMS_METADATA,
                                 "undocumented redis-streams metadata")
            self.assertIn("stream", md, "stream is required")
            where = [k for k in ("address", "addressFromEnv", "host", "hostFromEnv") if k in md]
            self.assertEqual(len(where), 1, f"give the address one way, not {where}")
            if where[0] in ("host", "hostFromEnv"):
                self.assertTrue({"port", "portFromEnv"} & set(md), "host needs port")
            counts = [k for k in REDIS_STREAMS_COUNTS if k in md]
            self.assertLessEqual(len(counts), 1, f"one scaling mode per trigger: {counts}")
            for k in counts + ["activationLagCount", "databaseIndex"]:
                if k in md:
                    self.assertIsInstance(md[k], str, f"{k} must be a quoted string")
                    self.assertRegex(md[k], INT_STRING, f"{k} is a non-negative integer")
            for k in counts:
                self.assertGreater(int(md[k]), 0, k)
            if "lagCount" in md or "pendingEntriesCount" in md:
                self.assertEqual(md.get("consumerGroup"), CONSUMER_GROUP)
            if "lagCount" in md:
                self.assertIn("activationLagCount", md,
                              "activationLagCount is required with lagCount")
            for k in ("enableTLS", "unsafeSsl"):
                if k in md:
                    self.assertIn(md[k], ("true", "false"), k)
            if md.get("unsafeSsl") == "true":
                self.assertEqual(md.get("enableTLS"), "true", "unsafeSsl requires enableTLS")

    def test_stream_is_the_workers_ready_key(self):
        queue, prefix = self.queue_and_prefix()
        cm_prefix = self.worker_env.get("JOBSTREAM_PREFIX")
        if cm_prefix is not None:
            self.assertEqual(cm_prefix, prefix, "JOBSTREAM_PREFIX (read by the CLI/promoter) "
                             "differs from the worker's prefix")
        self.assertEqual(self.worker_env.get("JOBSTREAM_QUEUE", queue), queue)
        expected = f"{prefix}:{{{queue}}}:ready"
        for _, t in self.triggers():
            self.assertEqual(t["metadata"]["stream"], expected)
            self.assertEqual(t["metadata"].get("consumerGroup"), CONSUMER_GROUP)

    def test_scale_to_zero_uses_lag(self):
        lag = [t for _, t in self.triggers() if "lagCount" in t["metadata"]]
        self.assertTrue(lag, "a lagCount trigger is KEDA's only redis-streams mode "
                        "documented to scale to zero")

    def test_address_database_and_tls_match_redis_url(self):
        url = self.redis_url()
        db = int((url.path or "/0").strip("/") or 0)
        for _, t in self.triggers():
            md = t["metadata"]
            if "addressFromEnv" in md:
                address = self.worker_env.get(md["addressFromEnv"])
                self.assertIsNotNone(address, f"the worker's container has no env {md['addressFromEnv']}")
            else:
                address = md.get("address")
            self.assertNotIn("://", address, "KEDA wants host:port, not a URL")
            self.assertEqual(address, f"{url.hostname}:{url.port or 6379}",
                             "the scaler's address differs from REDIS_URL's host:port")
            self.assertEqual(int(md.get("databaseIndex", "0")), db)
            auth = self.auth_params(t)
            self.assertFalse("enableTLS" in md and "tls" in auth,
                             "enableTLS cannot be combined with the TriggerAuthentication's tls")
            if "tls" in auth:
                tls_on = (self.m.secret_data(auth["tls"][0]) or {}).get(auth["tls"][1]) == "enable"
            else:
                tls_on = md.get("enableTLS") == "true"
            self.assertEqual(tls_on, url.scheme == "rediss",
                             "TLS for KEDA must follow the REDIS_URL scheme")
            # KEDA logs in as its own ACL user (it needs INFO, which the
            # workers' user lacks): not the URL's, but one if the URL has one.
            if url.password:
                self.assertTrue("password" in auth or "passwordFromEnv" in md,
                                "REDIS_URL has a password and KEDA gets none")
            if url.username and unquote(url.username) != "default":
                self.assertTrue("username" in auth or "usernameFromEnv" in md,
                                "REDIS_URL names an ACL user and KEDA gets none")
            for param in ("username", "password"):
                if param in auth:
                    s, k = auth[param]
                    self.assertTrue((self.m.secret_data(s) or {}).get(k),
                                    f"KEDA's {param}: Secret {s} has no (or an empty) key {k}")

    def test_tls_files_are_the_workers(self):
        """ca/cert/key of the TriggerAuthentication are the Secret keys mounted
        at the worker's JOBSTREAM_TLS_CA/CERT/KEY."""
        pod = self.worker["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes") or []}

        def secret_key_of(path):
            for vm in self.worker_container.get("volumeMounts") or []:
                mount = vm["mountPath"].rstrip("/") + "/"
                if path.startswith(mount):
                    vol = volumes[vm["name"]]
                    self.assertIn("secret", vol, f"{path} is not from a Secret")
                    return vol["secret"]["secretName"], path[len(mount):]
            self.fail(f"{path} is on no volume of the worker")

        for _, t in self.triggers():
            auth = self.auth_params(t)
            for param, env in (("ca", "JOBSTREAM_TLS_CA"), ("cert", "JOBSTREAM_TLS_CERT"),
                               ("key", "JOBSTREAM_TLS_KEY")):
                if env in self.worker_env:
                    self.assertEqual(auth.get(param), secret_key_of(self.worker_env[env]),
                                     f"KEDA's {param} is not the worker's {env}")


class TriggerAuthenticationTest(Base):
    def test_documented_fields_and_secret_keys(self):
        tas = self.m.of_kind("TriggerAuthentication")
        self.assertTrue(tas)
        for ta in tas:
            name = ta["metadata"]["name"]
            self.assertEqual(ta.get("apiVersion"), "keda.sh/v1alpha1")
            spec = ta.get("spec")
            self.assertIsInstance(spec, dict)
            self.assertLessEqual(set(spec), TRIGGER_AUTH_SPEC_KEYS, f"{name}: undocumented keys")
            self.assertNotIn("filePath", spec, "filePath is for ClusterTriggerAuthentication only")
            refs = spec.get("secretTargetRef")
            self.assertIsInstance(refs, list)
            params = [r.get("parameter") for r in refs]
            self.assertEqual(len(params), len(set(params)), f"{name}: a parameter repeats")
            for r in refs:
                self.assertEqual(set(r), SECRET_TARGET_REF_KEYS,
                                 f"{name}: secretTargetRef items have parameter, name, key")
                for k in SECRET_TARGET_REF_KEYS:
                    self.assertIsInstance(r[k], str)
                self.assertIn(r["parameter"], REDIS_STREAMS_AUTH_PARAMS,
                              f"{name}: not a redis-streams auth parameter")
                data = self.m.secret_data(r["name"])
                self.assertIsNotNone(data, f"{name}: no Secret {r['name']} here")
                self.assertIn(r["key"], data, f"{name}: Secret {r['name']} has no key {r['key']}")
                if r["parameter"] == "tls":
                    self.assertIn(data[r["key"]], ("enable", "disable"))


class WorkerDeploymentTest(Base):
    def deployments(self):
        return self.m.of_kind("Deployment")

    def test_grace_period_rule(self):
        pod = self.worker["spec"]["template"]["spec"]
        tgps = pod.get("terminationGracePeriodSeconds", 30)
        grace_ms = flag(self.worker_argv, "--shutdown-grace-ms")
        grace = int(grace_ms) / 1000 if grace_ms is not None else DEFAULT_SHUTDOWN_GRACE_S
        flush_ms = flag(self.worker_argv, "--shutdown-flush-ms")
        flush = int(flush_ms) / 1000 if flush_ms is not None else SHUTDOWN_FLUSH_S
        pre = self.worker_container.get("lifecycle", {}).get("preStop") or {}
        if "sleep" in pre:
            pre_s = pre["sleep"]["seconds"]
        elif "exec" in pre:
            cmd = pre["exec"]["command"]
            nums = [w for w in cmd if re.fullmatch(r"[0-9]+", str(w))]
            self.assertTrue("sleep" in " ".join(cmd) and nums,
                            f"cannot read the preStop's duration from {cmd}")
            pre_s = int(nums[-1])
        else:
            pre_s = 0
        need = pre_s + grace + flush + MIN_MARGIN_S
        self.assertGreaterEqual(
            tgps, need,
            f"terminationGracePeriodSeconds {tgps} < preStop {pre_s} + shutdown_grace "
            f"{grace} + shutdown_flush {flush} + margin {MIN_MARGIN_S}")

    def test_http_endpoints_and_probes(self):
        addr = flag(self.worker_argv, "--http-addr") or self.worker_env.get("JOBSTREAM_HTTP_ADDR")
        self.assertTrue(addr, "the worker serves no HTTP (--http-addr)")
        host, _, port = addr.rpartition(":")
        self.assertIn(host, ("0.0.0.0", "[::]"), "probes need the pod's address, not loopback")
        ports = {p.get("name"): p["containerPort"] for p in self.worker_container.get("ports", [])}
        self.assertIn(int(port), ports.values(), "the --http-addr port is not a containerPort")

        def probe_port(probe):
            p = probe["httpGet"]["port"]
            return ports.get(p) if isinstance(p, str) else p

        live = self.worker_container.get("livenessProbe")
        ready = self.worker_container.get("readinessProbe")
        self.assertTrue(live and ready, "liveness and readiness probes")
        self.assertEqual(live["httpGet"]["path"], "/livez")
        self.assertEqual(ready["httpGet"]["path"], "/readyz")
        self.assertEqual(probe_port(live), int(port))
        self.assertEqual(probe_port(ready), int(port))

    def test_security_and_resources(self):
        for d in self.deployments():
            name = d["metadata"]["name"]
            pod = d["spec"]["template"]["spec"]
            psc = pod.get("securityContext") or {}
            for c in pod["containers"]:
                sc = c.get("securityContext") or {}
                merged = {**psc, **sc}
                self.assertIs(merged.get("runAsNonRoot"), True, name)
                uid = merged.get("runAsUser")
                self.assertTrue(isinstance(uid, int) and uid > 0,
                                f"{name}: the image's USER is a name; runAsNonRoot needs a numeric runAsUser")
                self.assertIs(sc.get("readOnlyRootFilesystem"), True, name)
                self.assertIs(sc.get("allowPrivilegeEscalation"), False, name)
                self.assertEqual((sc.get("capabilities") or {}).get("drop"), ["ALL"], name)
                self.assertEqual((merged.get("seccompProfile") or {}).get("type"),
                                 "RuntimeDefault", name)
                res = c.get("resources") or {}
                for kind in ("requests", "limits"):
                    self.assertIn("memory", res.get(kind, {}), f"{name}: {kind}.memory")
                    self.assertIn("cpu", res.get(kind, {}), f"{name}: {kind}.cpu")

    def test_references_exist(self):
        for d in self.deployments():
            name = d["metadata"]["name"]
            pod = d["spec"]["template"]["spec"]
            volumes = {v["name"]: v for v in pod.get("volumes") or []}
            for v in volumes.values():
                if "secret" in v:
                    self.assertIsNotNone(self.m.named("Secret", v["secret"]["secretName"]), name)
            for c in pod["containers"]:
                for src in c.get("envFrom") or []:
                    kind, ref = (("ConfigMap", src["configMapRef"]) if "configMapRef" in src
                                 else ("Secret", src["secretRef"]))
                    self.assertIsNotNone(self.m.named(kind, ref["name"]), f"{name}: {ref}")
                for e in c.get("env") or []:
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if ref:
                        data = self.m.secret_data(ref["name"])
                        self.assertIsNotNone(data, f"{name}: no Secret {ref['name']}")
                        self.assertIn(ref["key"], data, f"{name}: {ref}")
                for vm in c.get("volumeMounts") or []:
                    self.assertIn(vm["name"], volumes, f"{name}: volumeMount {vm['name']}")
                for w in self.m.argv(c):
                    self.assertNotIn("$(", w, f"{name}: {w}: undefined variable")
            self.assertTrue(selector_matches(d["spec"]["selector"]["matchLabels"],
                                             d["spec"]["template"]["metadata"]["labels"]), name)

    def test_promoter(self):
        queue, prefix = self.queue_and_prefix()
        promoters = [d for d in self.deployments() if d is not self.worker]
        self.assertEqual(len(promoters), 1, "one promoter Deployment")
        p = promoters[0]
        self.assertEqual(p["spec"].get("replicas"), 1)
        c = p["spec"]["template"]["spec"]["containers"][0]
        argv = self.m.argv(c)
        self.assertEqual(argv[:2], ["jobstream", "promote"])
        self.assertEqual(flag(argv, "--queue"), queue, "the promoter serves another queue")
        env = self.m.container_env(c)
        self.assertEqual(flag(argv, "--prefix", env.get("JOBSTREAM_PREFIX", DEFAULT_PREFIX)), prefix)
        self.assertEqual(env.get("REDIS_URL"), self.worker_env.get("REDIS_URL"))
        for k in ("JOBSTREAM_TLS_CA", "JOBSTREAM_TLS_CERT", "JOBSTREAM_TLS_KEY"):
            self.assertEqual(env.get(k), self.worker_env.get(k), k)

    def test_service_and_pdb_select_the_workers(self):
        labels = self.worker["spec"]["template"]["metadata"]["labels"]
        ports = [p.get("name") for p in self.worker_container.get("ports", [])]
        services = self.m.of_kind("Service")
        self.assertTrue(services)
        for s in services:
            self.assertTrue(selector_matches(s["spec"]["selector"], labels))
            for p in s["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                self.assertTrue(tp in ports or tp in [q["containerPort"] for q in
                                                      self.worker_container["ports"]])
        pdbs = self.m.of_kind("PodDisruptionBudget")
        self.assertEqual(len(pdbs), 1)
        self.assertTrue(selector_matches(pdbs[0]["spec"]["selector"]["matchLabels"], labels))
        self.assertNotIn("minAvailable", pdbs[0]["spec"],
                         "minAvailable blocks drains while KEDA holds the workers at zero")


class ServiceMonitorTest(Base):
    def test_kept_out_of_the_base(self):
        self.assertFalse(self.m.of_kind("ServiceMonitor"),
                         "the base must not need the Prometheus Operator's CRD")
        self.assertEqual(self.m.component.get("kind"), "Component")

    def test_structure(self):
        sms = self.m.of_kind("ServiceMonitor", [o for _, o in self.m.monitoring])
        self.assertEqual(len(sms), 1)
        sm = sms[0]
        self.assertEqual(sm.get("apiVersion"), "monitoring.coreos.com/v1")
        self.assertEqual(sm["metadata"].get("namespace"), self.m.kustomization.get("namespace"),
                         "a Component does not inherit the base's namespace: set it")
        spec = sm.get("spec")
        self.assertIsInstance(spec, dict)
        self.assertLessEqual(set(spec), SERVICEMONITOR_SPEC_KEYS)
        selector = spec.get("selector")
        self.assertIsInstance(selector, dict, "selector is required")
        self.assertLessEqual(set(selector), {"matchLabels", "matchExpressions"})
        endpoints = spec.get("endpoints")
        self.assertIsInstance(endpoints, list)
        self.assertTrue(endpoints)
        services = [s for s in self.m.of_kind("Service")
                    if selector_matches(selector.get("matchLabels", {}),
                                        s["metadata"].get("labels", {}))]
        self.assertTrue(services, "the selector matches no Service's labels")
        port_names = {p.get("name") for s in services for p in s["spec"]["ports"]}
        for ep in endpoints:
            self.assertLessEqual(set(ep), ENDPOINT_KEYS, "undocumented endpoint keys")
            self.assertTrue("port" in ep or "targetPort" in ep)
            if "port" in ep:
                self.assertIn(ep["port"], port_names, "endpoint port is not a Service port name")
            self.assertEqual(ep.get("path", "/metrics"), "/metrics")
            self.assertIn(ep.get("scheme", "http"), ("http", "https"))
            for k in ("interval", "scrapeTimeout"):
                if k in ep:
                    self.assertRegex(ep[k], PROM_DURATION, k)
            if "interval" in ep and "scrapeTimeout" in ep:
                self.assertLessEqual(prom_seconds(ep["scrapeTimeout"]), prom_seconds(ep["interval"]))


if __name__ == "__main__":
    unittest.main()
