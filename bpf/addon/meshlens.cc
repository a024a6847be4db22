// libbpf binding for meshlens: load with per-program degradation, attach, ring-buffer
// delivery on the libuv loop, socket-map reads (through the ml_read iterator, which also
// refreshes open sockets' counters), counters, BTF layouts, and the per-network-namespace
// iterator that adopts sockets opened before attach.
#include <napi.h>
#include <uv.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include <cstddef>
#include <algorithm>
#include <map>
#include <set>
#include <unordered_set>
#include <string>
#include <thread>
#include <vector>

#include "../src/meshlens.h"

namespace {

// libbpf reports through a global callback; we keep the tail of what the current
// operation printed so a failed load or attach can say why.
std::string g_log;
constexpr size_t kLogKeep = 4096;

int CaptureLog(enum libbpf_print_level level, const char *fmt, va_list ap) {
  if (level == LIBBPF_DEBUG) return 0;
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n > 0) {
    std::string msg(n + 1, '\0');
    vsnprintf(msg.data(), msg.size(), fmt, ap);
    msg.resize(n);
    g_log += msg;
  }
  if (g_log.size() > 4 * kLogKeep) g_log.erase(0, g_log.size() - kLogKeep);
  return 0;
}

std::string TakeLog(int err) {
  std::string out = g_log.size() > kLogKeep ? g_log.substr(g_log.size() - kLogKeep) : g_log;
  g_log.clear();
  std::string msg = std::string(strerror(err < 0 ? -err : err));
  return out.empty() ? msg : msg + "\n" + out;
}

struct ProgramReport {
  std::string name;
  std::string section;
  bool loaded = false;
  bool attached = false;
  bool left_out = false;  // named in `without`: not loaded, and not for want of kernel support
  __u32 id = 0;  // kernel program id once loaded, to find it with bpftool
  std::string error;
};

bool IsIter(bpf_program *p) { return bpf_program__type(p) == BPF_PROG_TYPE_TRACING &&
                                      bpf_program__expected_attach_type(p) == BPF_TRACE_ITER; }
bool IsCgroup(bpf_program *p) {
  auto t = bpf_program__type(p);
  return t == BPF_PROG_TYPE_SOCK_OPS || t == BPF_PROG_TYPE_CGROUP_SKB || t == BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
}

class Probes : public Napi::ObjectWrap<Probes> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Probes",
                       {InstanceMethod("attachments", &Probes::Attachments),
                        InstanceMethod("layout", &Probes::Layout),
                        InstanceMethod("enumValues", &Probes::EnumValues),
                        InstanceMethod("setConfig", &Probes::SetConfig),
                        InstanceMethod("readCounters", &Probes::ReadCounters),
                        InstanceMethod("readSockets", &Probes::ReadSockets),
                        InstanceMethod("deleteSockets", &Probes::DeleteSockets),
                        InstanceMethod("startEvents", &Probes::StartEvents),
                        InstanceMethod("adopt", &Probes::Adopt),
                        InstanceMethod("programStats", &Probes::ProgramStats),
                        InstanceMethod("close", &Probes::Close)});
  }

  // new Probes(objectPath, cgroupPath, without?: string[]): `without` names programs not to
  // load at all.
  explicit Probes(const Napi::CallbackInfo &info) : Napi::ObjectWrap<Probes>(info), env_(info.Env()) {
    std::string path = info[0].As<Napi::String>();
    std::string cgroup = info[1].As<Napi::String>();
    std::set<std::string> without;
    if (info.Length() > 2 && info[2].IsArray()) {
      auto arr = info[2].As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); i++) without.insert(arr.Get(i).As<Napi::String>());
    }
    libbpf_set_print(CaptureLog);
    g_log.clear();
    cgroup_fd_ = open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cgroup_fd_ < 0) throw Napi::Error::New(env_, "open cgroup " + cgroup + ": " + strerror(errno));
    LoadDegrading(path, without);
    AttachAll();
    // Links are file descriptors, so process exit detaches everything anyway; this hook
    // covers worker threads and embedders that tear an environment down without exiting.
    napi_add_env_cleanup_hook(env_, CleanupHook, this);
  }

  ~Probes() override {
    Teardown();
    napi_remove_env_cleanup_hook(env_, CleanupHook, this);
  }

  static void CleanupHook(void *self) { static_cast<Probes *>(self)->Teardown(); }

 private:
  Napi::Env env_;
  bpf_object *obj_ = nullptr;
  std::vector<bpf_link *> links_;
  std::map<std::string, bpf_link *> iter_links_;  // by program name
  ring_buffer *rb_ = nullptr;
  uv_poll_t *poll_ = nullptr;
  Napi::FunctionReference on_events_;
  std::vector<std::vector<uint8_t>> pending_;
  std::vector<ProgramReport> report_;
  int cgroup_fd_ = -1;
  int stats_fd_ = -1;
  // Sockets that had spilled histograms (`hist_spilled`) at the last readSockets: only these
  // have a spill entry to delete with them (a closed socket spills no more), so deleting
  // the rest's is not tried key by key.
  std::unordered_set<__u64> spilled_;
  // A read's buffers, kept between reads. Allocated afresh at every read, the one JS decodes
  // was external memory that V8 counts against the old generation's limit until a
  // mark-compact frees it: ~1.4 MB per agent sweep brought on a full GC every ~5 sweeps
  // (bench/RESULTS.md, issue 4); the C++ ones were page faults.
  std::vector<uint8_t> stream_, spills_;
  std::vector<size_t> picked_;
  Napi::Reference<Napi::ArrayBuffer> out_;

  // Opens the object with only `enabled` programs autoloaded (all when empty) and loads it.
  int TryLoad(const std::string &path, const std::set<std::string> *enabled, bpf_object **out) {
    bpf_object *obj = bpf_object__open_file(path.c_str(), nullptr);
    int err = libbpf_get_error(obj);
    if (err) return err;
    bpf_program *p;
    bpf_object__for_each_program(p, obj) {
      if (enabled) bpf_program__set_autoload(p, enabled->count(bpf_program__name(p)) > 0);
    }
    // The verifier gives up with EAGAIN when a signal is pending on this thread, and libbpf
    // retries only a few times: under a sampling profiler (SIGPROF every millisecond) or a
    // burst of SIGCHLDs every large program "failed to load" and the agent ran without it.
    // Signals wait until the load is done instead.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    err = bpf_object__load(obj);
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (err) {
      bpf_object__close(obj);
      return err;
    }
    *out = obj;
    return 0;
  }

  // A libbpf load is all-or-nothing; when the whole object is refused, find out program by
  // program what this kernel accepts and load just those, so an older kernel degrades.
  // Programs named in `without` are left out from the start.
  void LoadDegrading(const std::string &path, const std::set<std::string> &without) {
    bpf_object *probe = bpf_object__open_file(path.c_str(), nullptr);
    if (libbpf_get_error(probe)) throw Napi::Error::New(env_, "open " + path + ": " + TakeLog(libbpf_get_error(probe)));
    std::set<std::string> wanted;
    bpf_program *p;
    bpf_object__for_each_program(p, probe) {
      ProgramReport r;
      r.name = bpf_program__name(p);
      r.section = bpf_program__section_name(p);
      r.left_out = without.count(r.name) > 0;
      if (r.left_out) r.error = "left out by configuration";
      else wanted.insert(r.name);
      report_.push_back(r);
    }
    bpf_object__close(probe);
    for (auto &name : without) {
      if (std::none_of(report_.begin(), report_.end(), [&](const ProgramReport &r) { return r.name == name; }))
        throw Napi::Error::New(env_, "cannot leave out " + name + ": " + path + " has no such program");
    }
    if (wanted.empty()) throw Napi::Error::New(env_, "every program of " + path + " left out");
    int err = TryLoad(path, without.empty() ? nullptr : &wanted, &obj_);
    if (!err) {
      for (auto &r : report_) r.loaded = wanted.count(r.name) > 0;
      return;
    }
    std::string whole_error = TakeLog(err);
    std::set<std::string> ok;
    for (auto &r : report_) {
      if (!wanted.count(r.name)) continue;
      std::set<std::string> one{r.name};
      bpf_object *single = nullptr;
      int e = TryLoad(path, &one, &single);
      if (e) {
        r.error = "load: " + TakeLog(e);
      } else {
        ok.insert(r.name);
        bpf_object__close(single);
      }
    }
    if (ok.empty()) {
      // Each program's own refusal on the first line: the whole object's error is only the
      // first program the kernel refused, which may not be the one that says why (a helper
      // a missing capability withholds reads as EINVAL; the same capability elsewhere, EPERM).
      std::string each;
      for (auto &r : report_) {
        if (r.left_out) continue;
        each += (each.empty() ? "" : "; ") + r.name + ": " + r.error.substr(0, r.error.find('\n'));
      }
      throw Napi::Error::New(env_, "no meshlens program loads on this kernel (" + each + "): " + whole_error);
    }
    if (TryLoad(path, &ok, &obj_)) throw Napi::Error::New(env_, "no meshlens program loads on this kernel: " + whole_error);
    for (auto &r : report_) r.loaded = ok.count(r.name) > 0;
  }

  void AttachAll() {
    for (auto &r : report_) {
      if (!r.loaded) continue;
      bpf_program *p = bpf_object__find_program_by_name(obj_, r.name.c_str());
      struct bpf_prog_info info = {};
      __u32 len = sizeof(info);
      if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len) == 0) r.id = info.id;
      bpf_link *link = nullptr;
      if (IsIter(p)) {
        link = AttachIter(p);
      } else if (IsCgroup(p)) {
        link = bpf_program__attach_cgroup(p, cgroup_fd_);
      } else {
        link = bpf_program__attach(p);
      }
      int err = libbpf_get_error(link);
      if (err) {
        r.error = "attach: " + TakeLog(err);
        continue;
      }
      r.attached = true;
      if (IsIter(p)) iter_links_[r.name] = link; else links_.push_back(link);
    }
    g_log.clear();
  }

  // A map-element iterator (ml_read) walks the socket map; the others (iter/tcp) walk the
  // sockets of the namespace they are read in.
  bpf_link *AttachIter(bpf_program *p) {
    if (strcmp(bpf_program__section_name(p), "iter/bpf_map_elem") != 0) return bpf_program__attach_iter(p, nullptr);
    union bpf_iter_link_info linfo = {};
    linfo.map.map_fd = MapFd("ml_socks");
    LIBBPF_OPTS(bpf_iter_attach_opts, opts, .link_info = &linfo, .link_info_len = sizeof(linfo));
    return bpf_program__attach_iter(p, &opts);
  }

  void Teardown() {
    if (poll_) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
      poll_ = nullptr;
    }
    if (rb_) ring_buffer__free(rb_), rb_ = nullptr;
    for (auto *l : links_) bpf_link__destroy(l);
    links_.clear();
    for (auto &[name, l] : iter_links_) bpf_link__destroy(l);
    iter_links_.clear();
    if (obj_) bpf_object__close(obj_), obj_ = nullptr;
    if (cgroup_fd_ >= 0) ::close(cgroup_fd_), cgroup_fd_ = -1;
    if (stats_fd_ >= 0) ::close(stats_fd_), stats_fd_ = -1;
    if (!on_events_.IsEmpty()) on_events_.Reset();
    if (!out_.IsEmpty()) out_.Reset();
  }

  void RequireOpen() {
    if (!obj_) throw Napi::Error::New(env_, "probes are closed");
  }

  int MapFd(const char *name) {
    RequireOpen();
    bpf_map *m = bpf_object__find_map_by_name(obj_, name);
    if (!m) throw Napi::Error::New(env_, std::string("map missing: ") + name);
    return bpf_map__fd(m);
  }

  Napi::Value Attachments(const Napi::CallbackInfo &info) {
    auto arr = Napi::Array::New(env_, report_.size());
    for (size_t i = 0; i < report_.size(); i++) {
      auto o = Napi::Object::New(env_);
      o.Set("program", report_[i].name);
      o.Set("section", report_[i].section);
      o.Set("loaded", report_[i].loaded);
      o.Set("attached", report_[i].attached);
      o.Set("leftOut", report_[i].left_out);
      o.Set("id", report_[i].loaded ? Napi::Value(Napi::Number::New(env_, report_[i].id)) : env_.Null());
      o.Set("error", report_[i].error.empty() ? env_.Null() : Napi::String::New(env_, report_[i].error));
      arr.Set(i, o);
    }
    return arr;
  }

  const btf *Btf() {
    RequireOpen();
    const btf *b = bpf_object__btf(obj_);
    if (!b) throw Napi::Error::New(env_, "object has no BTF");
    return b;
  }

  static std::string KindName(const btf_type *t) {
    switch (btf_kind(t)) {
      case BTF_KIND_INT: return "int";
      case BTF_KIND_ARRAY: return "array";
      case BTF_KIND_STRUCT: return "struct";
      case BTF_KIND_UNION: return "union";
      case BTF_KIND_ENUM: return "enum";
      case BTF_KIND_PTR: return "ptr";
      default: return "other";
    }
  }

  // layout(structName) -> { size, members: [{ name, offset, size, kind, type, elemSize, count }] }
  Napi::Value Layout(const Napi::CallbackInfo &info) {
    const btf *b = Btf();
    std::string name = info[0].As<Napi::String>();
    int id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_STRUCT);
    if (id < 0) throw Napi::Error::New(env_, "struct not in BTF: " + name);
    const btf_type *t = btf__type_by_id(b, id);
    auto out = Napi::Object::New(env_);
    out.Set("size", t->size);
    const btf_member *m = btf_members(t);
    auto members = Napi::Array::New(env_, btf_vlen(t));
    for (int i = 0; i < btf_vlen(t); i++, m++) {
      auto mo = Napi::Object::New(env_);
      int tid = btf__resolve_type(b, m->type);
      const btf_type *mt = btf__type_by_id(b, tid);
      mo.Set("name", btf__name_by_offset(b, m->name_off));
      mo.Set("offset", btf_member_bit_offset(t, i) / 8);
      mo.Set("size", static_cast<double>(btf__resolve_size(b, tid)));
      mo.Set("kind", KindName(mt));
      mo.Set("type", btf__name_by_offset(b, mt->name_off));
      if (btf_is_array(mt)) {
        const struct btf_array *a = btf_array(mt);
        mo.Set("count", a->nelems);
        mo.Set("elemSize", static_cast<double>(btf__resolve_size(b, a->type)));
      }
      members.Set(i, mo);
    }
    out.Set("members", members);
    return out;
  }

  Napi::Value EnumValues(const Napi::CallbackInfo &info) {
    const btf *b = Btf();
    std::string name = info[0].As<Napi::String>();
    int id = btf__find_by_name_kind(b, name.c_str(), BTF_KIND_ENUM);
    if (id < 0) throw Napi::Error::New(env_, "enum not in BTF: " + name);
    const btf_type *t = btf__type_by_id(b, id);
    const struct btf_enum *e = btf_enum(t);
    auto out = Napi::Object::New(env_);
    for (int i = 0; i < btf_vlen(t); i++, e++) out.Set(btf__name_by_offset(b, e->name_off), e->val);
    return out;
  }

  Napi::Value SetConfig(const Napi::CallbackInfo &info) {
    Config(info[0].As<Napi::Number>().Uint32Value(), static_cast<__u64>(info[1].As<Napi::Number>().Int64Value()));
    return env_.Undefined();
  }

  // Per-CPU counters summed; index = enum ml_stat.
  Napi::Value ReadCounters(const Napi::CallbackInfo &info) {
    int fd = MapFd("ml_stats");
    int ncpu = libbpf_num_possible_cpus();
    std::vector<__u64> vals(ncpu);
    auto out = Napi::Array::New(env_, ML_STAT_MAX);
    for (__u32 k = 0; k < ML_STAT_MAX; k++) {
      __u64 sum = 0;
      if (bpf_map_lookup_elem(fd, &k, vals.data()) == 0)
        for (auto v : vals) sum += v;
      out.Set(k, static_cast<double>(sum));
    }
    return out;
  }

  // Every entry of a hash map keyed by u64, read in batches.
  void BatchRead(int fd, size_t vsz, std::vector<__u64> &keys, std::vector<uint8_t> &values) {
    __u32 chunk = 256;
    __u64 in_batch = 0, out_batch = 0;
    bool first = true;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
      size_t have = keys.size();
      keys.resize(have + chunk);
      values.resize((have + chunk) * vsz);
      __u32 n = chunk;
      int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_batch, &out_batch, keys.data() + have,
                                     values.data() + have * vsz, &n, &opts);
      int e = err ? errno : 0;
      keys.resize(have + n);
      values.resize((have + n) * vsz);
      if (err && e == ENOSPC) {  // one hash bucket holds more than a chunk
        chunk *= 2;
        continue;
      }
      if (err && e != ENOENT) throw Napi::Error::New(env_, std::string("map batch read: ") + strerror(e));
      if (err) return;  // ENOENT: map exhausted
      in_batch = out_batch;
      first = false;
    }
  }

  // Sets a parameter of the kernel side (enum ml_config).
  void Config(__u32 key, __u64 val) {
    if (bpf_map_update_elem(MapFd("ml_config"), &key, &val, BPF_ANY))
      throw Napi::Error::New(env_, std::string("config update: ") + strerror(errno));
  }

  // The socket map as ml_read items into stream_: through ml_read where it attached (one
  // pass that refreshes, leaves out idle sockets as headers, and hands the rest over), else
  // by batch lookup, unrefreshed, into the same items.
  void ReadSockStream(bool refresh, __u64 updated_since, __u64 opened_since) {
    stream_.clear();
    auto it = iter_links_.find("ml_read");
    if (it != iter_links_.end()) {
      Config(ML_CFG_READ_REFRESH, refresh);
      Config(ML_CFG_READ_UPDATED_SINCE_NS, updated_since);
      Config(ML_CFG_READ_OPENED_SINCE_NS, opened_since);
      std::string error = DrainIter(bpf_link__fd(it->second), &stream_);
      if (!error.empty()) throw Napi::Error::New(env_, "ml_read: " + error);
      return;
    }
    std::vector<__u64> keys;
    std::vector<uint8_t> values;
    BatchRead(MapFd("ml_socks"), sizeof(struct ml_sock), keys, values);
    for (size_t i = 0; i < keys.size(); i++) {
      auto *s = reinterpret_cast<struct ml_sock *>(values.data() + i * sizeof(struct ml_sock));
      struct ml_read_item item = {keys[i], s->owner.netns, static_cast<__u32>(ml_read_full(s, updated_since, opened_since))};
      stream_.insert(stream_.end(), reinterpret_cast<uint8_t *>(&item), reinterpret_cast<uint8_t *>(&item + 1));
      if (item.full) stream_.insert(stream_.end(), reinterpret_cast<uint8_t *>(s), reinterpret_cast<uint8_t *>(s) + ML_SOCK_HANDED);
      s->sk = 0; // nor kept in the scratch buffer once it is freed
    }
  }

  // readSockets(deleteClosed, netns?: number[] | null, since?: { updatedUs, openedUs },
  // refresh = true) -> { buf, count, valueSize, spillsAt, spillCount, spillValueSize,
  // inScope }: `buf` (an ArrayBuffer, see OutBuffer) holds `count` sockets as [u64 cookie,
  // struct ml_sock], then from `spillsAt` `spillCount` spilled histograms as [u64 cookie,
  // struct ml_hist]. `refresh`: counters as of now (see ml_read), not as of each socket's
  // last state change. Sockets are read before their spilled histograms, so a sample
  // spilled in between is in the histogram, not lost; the spilled histograms are looked up
  // one by one for the sockets returned that say they have one (`hist_spilled`), not read as
  // a whole map (a walk of all its 65,536 buckets at every read, though most sockets never
  // spill and most are left out by `since`). Closed sockets are final once seen, so deleting
  // them right after this read loses nothing. With `netns`, only sockets of those network
  // namespaces are returned (filtered here, before JS decodes anything), and closed ones of
  // other namespaces are deleted: nobody will ever be handed them. With `since`, an open
  // socket is returned only if it was updated at or after `updatedUs` or opened at or after
  // `openedUs` (CLOCK_MONOTONIC): an idle socket costs JS nothing. `inScope`: the sockets of
  // those namespaces in the map, returned or not.
  Napi::Value ReadSockets(const Napi::CallbackInfo &info) {
    bool delete_closed = info[0].ToBoolean();
    bool filter = info.Length() > 1 && info[1].IsArray();
    std::unordered_set<__u32> scope;
    if (filter) {
      auto arr = info[1].As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); i++) scope.insert(arr.Get(i).As<Napi::Number>().Uint32Value());
    }
    __u64 updated_since = 0, opened_since = 0;
    if (info.Length() > 2 && info[2].IsObject()) {
      auto since = info[2].As<Napi::Object>();
      updated_since = static_cast<__u64>(since.Get("updatedUs").As<Napi::Number>().DoubleValue()) * 1000;
      opened_since = static_cast<__u64>(since.Get("openedUs").As<Napi::Number>().DoubleValue()) * 1000;
    }
    bool refresh = info.Length() <= 3 || info[3].IsUndefined() || info[3].ToBoolean();
    ReadSockStream(refresh, updated_since, opened_since);
    int spill_fd = MapFd("ml_hist_spill");
    picked_.clear();
    spills_.clear();
    spilled_.clear();
    std::vector<__u64> gone;
    size_t in_scope_count = 0;
    for (size_t at = 0; at + sizeof(struct ml_read_item) <= stream_.size();) {
      struct ml_read_item item;
      memcpy(&item, stream_.data() + at, sizeof(item));
      bool in_scope = !filter || scope.count(item.netns) > 0;
      in_scope_count += in_scope;
      size_t here = at;
      at += sizeof(item);
      if (!item.full) continue;
      auto *s = reinterpret_cast<const struct ml_sock *>(stream_.data() + at);
      at += ML_SOCK_HANDED;
      bool closed = s->flags & ML_SOCK_CLOSED;
      if (s->hist_spilled) spilled_.insert(item.cookie);
      if (closed && (delete_closed || !in_scope)) gone.push_back(item.cookie);
      if (!in_scope) continue;
      picked_.push_back(here);
      struct ml_hist hist;
      if (!s->hist_spilled || bpf_map_lookup_elem(spill_fd, &item.cookie, &hist)) continue;
      spills_.insert(spills_.end(), reinterpret_cast<uint8_t *>(&item.cookie), reinterpret_cast<uint8_t *>(&item.cookie + 1));
      spills_.insert(spills_.end(), reinterpret_cast<uint8_t *>(&hist), reinterpret_cast<uint8_t *>(&hist + 1));
    }
    // Sockets, then the spills that were looked up after them: [cookie, ml_sock] per socket,
    // then [cookie, ml_hist] per spill.
    const size_t sock_item = 8 + ML_SOCK_HANDED;
    size_t need = picked_.size() * sock_item + spills_.size();
    uint8_t *out = OutBuffer(need);
    for (size_t i = 0; i < picked_.size(); i++) {
      memcpy(out + i * sock_item, stream_.data() + picked_[i], 8);
      memcpy(out + i * sock_item + 8, stream_.data() + picked_[i] + sizeof(struct ml_read_item), ML_SOCK_HANDED);
    }
    if (!spills_.empty()) memcpy(out + picked_.size() * sock_item, spills_.data(), spills_.size());
    if (stream_.capacity() > (1u << 20) && stream_.size() < stream_.capacity() / 4) stream_.shrink_to_fit();
    Delete(gone);
    auto result = Napi::Object::New(env_);
    result.Set("inScope", static_cast<double>(in_scope_count));
    result.Set("buf", out_.Value());
    result.Set("count", static_cast<double>(picked_.size()));
    result.Set("valueSize", static_cast<double>(ML_SOCK_HANDED));
    result.Set("spillsAt", static_cast<double>(picked_.size() * sock_item));
    result.Set("spillCount", static_cast<double>(spills_.size() / (8 + sizeof(struct ml_hist))));
    result.Set("spillValueSize", static_cast<double>(sizeof(struct ml_hist)));
    return result;
  }

  // The buffer a read is handed to JS in, at least `need` bytes. The same one every time: a
  // read overwrites the previous one's (probes.ts refuses to decode a read overtaken by a
  // later one). Grown by doubling; a read that needs under a quarter of it after a spike (a
  // map full of closed sockets) gets a smaller one, so the spike is not held forever.
  uint8_t *OutBuffer(size_t need) {
    size_t cap = out_.IsEmpty() ? 0 : out_.Value().ByteLength();
    const size_t floor = 64 * 1024;
    if (out_.IsEmpty() || cap < need || (cap > floor && need < cap / 4)) {
      size_t size = floor;
      while (size < need * 2) size *= 2;
      out_ = Napi::Persistent(Napi::ArrayBuffer::New(env_, size));
    }
    return static_cast<uint8_t *>(out_.Value().Data());
  }

  // Deletes `keys` from the map in batches (one syscall per batch, not per key); a batch
  // stops at the first key that is not there, which is skipped. Returns how many went.
  size_t DeleteBatched(int fd, const std::vector<__u64> &keys) {
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    size_t at = 0, deleted = 0;
    while (at < keys.size()) {
      __u32 n = keys.size() - at;
      int err = bpf_map_delete_batch(fd, keys.data() + at, &n, &opts);
      int e = errno;
      deleted += n;
      at += n;
      if (!err) continue;
      if (e != ENOENT) throw Napi::Error::New(env_, std::string("map batch delete: ") + strerror(e));
      at++;
    }
    return deleted;
  }

  // Sockets, then their spilled histograms if they had one at the last read (the socket
  // first: once it is gone, no sample can spill for it any more).
  size_t Delete(const std::vector<__u64> &keys) {
    size_t deleted = DeleteBatched(MapFd("ml_socks"), keys);
    std::vector<__u64> spills;
    for (auto k : keys)
      if (spilled_.erase(k)) spills.push_back(k);
    DeleteBatched(MapFd("ml_hist_spill"), spills);
    return deleted;
  }

  // deleteSockets(Buffer of u64 LE cookies) -> number of sockets deleted
  Napi::Value DeleteSockets(const Napi::CallbackInfo &info) {
    auto buf = info[0].As<Napi::Buffer<uint8_t>>();
    std::vector<__u64> keys(buf.Length() / 8);
    memcpy(keys.data(), buf.Data(), keys.size() * 8);
    return Napi::Number::New(env_, static_cast<double>(Delete(keys)));
  }

  static int OnRecord(void *ctx, void *data, size_t size) {
    auto *self = static_cast<Probes *>(ctx);
    auto *p = static_cast<uint8_t *>(data);
    self->pending_.emplace_back(p, p + size);
    return 0;
  }

  // Drains the ring buffer on the loop thread and hands JS one array per wake-up.
  void Drain() {
    if (!rb_) return;
    int n = ring_buffer__consume(rb_);
    if (n < 0 || pending_.empty()) return;
    Napi::HandleScope scope(env_);
    auto arr = Napi::Array::New(env_, pending_.size());
    for (size_t i = 0; i < pending_.size(); i++)
      arr.Set(i, Napi::Buffer<uint8_t>::Copy(env_, pending_[i].data(), pending_[i].size()));
    pending_.clear();
    // No JS frame is below a libuv callback: a throwing listener must become an
    // uncaughtException, not a C++ exception unwinding into libuv.
    try {
      on_events_.MakeCallback(Value(), {arr});
    } catch (const Napi::Error &e) {
      napi_fatal_exception(env_, e.Value());
    }
  }

  // startEvents(cb(buffers[])): the ring buffer's epoll fd joins the libuv loop, so events
  // arrive without a thread and without blocking; the handle does not keep Node alive.
  Napi::Value StartEvents(const Napi::CallbackInfo &info) {
    RequireOpen();
    if (rb_) throw Napi::Error::New(env_, "events already started");
    on_events_ = Napi::Persistent(info[0].As<Napi::Function>());
    rb_ = ring_buffer__new(MapFd("ml_events"), OnRecord, this, nullptr);
    if (!rb_) throw Napi::Error::New(env_, "ring_buffer__new: " + TakeLog(errno));
    uv_loop_t *loop = nullptr;
    napi_get_uv_event_loop(env_, &loop);
    poll_ = new uv_poll_t;
    poll_->data = this;
    uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_));
    uv_poll_start(poll_, UV_READABLE, [](uv_poll_t *h, int status, int) {
      if (status == 0) static_cast<Probes *>(h->data)->Drain();
    });
    uv_unref(reinterpret_cast<uv_handle_t *>(poll_));
    return env_.Undefined();
  }

  // adopt(netnsPaths[]) -> [{ path, ok, gone, error }]: ml_adopt (sockets opened before
  // attach) in each namespace.
  Napi::Value Adopt(const Napi::CallbackInfo &info) { return RunIter(info, "ml_adopt"); }

  int IterLinkFd(const char *program) {
    RequireOpen();
    auto found = iter_links_.find(program);
    if (found == iter_links_.end())
      throw Napi::Error::New(env_, std::string("socket iterator ") + program + " is not available on this kernel");
    return bpf_link__fd(found->second);
  }

  // Runs one pass of an attached iterator (its programs do their work as it is read), keeping
  // what they write in `out` if given; "" or what failed.
  static std::string DrainIter(int link_fd, std::vector<uint8_t> *out = nullptr) {
    int it = bpf_iter_create(link_fd);
    if (it < 0) return "bpf_iter_create: " + std::string(strerror(errno));
    // A read returns at most what fits the kernel's seq buffer (8 pages).
    uint8_t buf[32768];
    ssize_t n;
    while ((n = read(it, buf, sizeof buf)) > 0)
      if (out) out->insert(out->end(), buf, buf + n);
    std::string error = n < 0 ? "iterate: " + std::string(strerror(errno)) : "";
    ::close(it);
    return error;
  }

  // An iter/tcp only walks the sockets of the network namespace it was created in, so one
  // short-lived thread joins each namespace in turn (setns affects only the calling thread,
  // and the thread ends with it) and runs the iterator there.
  Napi::Value RunIter(const Napi::CallbackInfo &info, const char *program) {
    int link_fd = IterLinkFd(program);
    auto arr = info[0].As<Napi::Array>();
    std::vector<std::string> paths(arr.Length());
    for (uint32_t i = 0; i < arr.Length(); i++) paths[i] = arr.Get(i).As<Napi::String>().Utf8Value();
    struct Result { std::string error; bool gone = false; };
    std::vector<Result> results(paths.size());
    std::thread worker([&] {
      for (size_t i = 0; i < paths.size(); i++) {
        Result &r = results[i];
        int ns = open(paths[i].c_str(), O_RDONLY | O_CLOEXEC);
        // The process that held the namespace exited since it was listed.
        if (ns < 0) { r.gone = errno == ENOENT || errno == ESRCH; r.error = "open: " + std::string(strerror(errno)); continue; }
        if (setns(ns, CLONE_NEWNET)) { r.error = "setns: " + std::string(strerror(errno)); ::close(ns); continue; }
        ::close(ns);
        r.error = DrainIter(link_fd);
      }
    });
    worker.join();
    auto out = Napi::Array::New(env_, paths.size());
    for (size_t i = 0; i < paths.size(); i++) {
      auto o = Napi::Object::New(env_);
      o.Set("path", paths[i]);
      o.Set("ok", results[i].error.empty());
      o.Set("gone", results[i].gone);
      o.Set("error", results[i].error.empty() ? env_.Null() : Napi::String::New(env_, results[i].error));
      out.Set(i, o);
    }
    return out;
  }

  // programStats(timing = true) -> [{ program, id, runCount, runTimeNs, missedRuns }]. With
  // timing, the first call turns on the kernel's run-time accounting (it stays on, for every
  // program on the host, until these probes close) and runCount/runTimeNs count from that
  // moment; without it they stay 0 and the call costs the host nothing. missedRuns is always
  // counted: runs the kernel skipped because the program was already running on that CPU.
  Napi::Value ProgramStats(const Napi::CallbackInfo &info) {
    RequireOpen();
    bool timing = info.Length() < 1 || !info[0].IsBoolean() || info[0].As<Napi::Boolean>().Value();
    if (timing && stats_fd_ < 0) {
      stats_fd_ = bpf_enable_stats(BPF_STATS_RUN_TIME);
      if (stats_fd_ < 0) throw Napi::Error::New(env_, std::string("bpf_enable_stats: ") + strerror(errno));
    }
    auto out = Napi::Array::New(env_);
    uint32_t n = 0;
    for (auto &r : report_) {
      if (!r.loaded) continue;
      bpf_program *p = bpf_object__find_program_by_name(obj_, r.name.c_str());
      struct bpf_prog_info pi = {};
      __u32 len = sizeof(pi);
      if (bpf_obj_get_info_by_fd(bpf_program__fd(p), &pi, &len)) continue;
      auto o = Napi::Object::New(env_);
      o.Set("program", r.name);
      o.Set("id", pi.id);
      o.Set("runCount", static_cast<double>(pi.run_cnt));
      o.Set("runTimeNs", static_cast<double>(pi.run_time_ns));
      o.Set("missedRuns", static_cast<double>(pi.recursion_misses));
      out.Set(n++, o);
    }
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Teardown();
    return env_.Undefined();
  }
};

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("Probes", Probes::Init(env));
  auto layout = Napi::Object::New(env);
  layout.Set("sockValueSize", static_cast<double>(sizeof(struct ml_sock)));
  layout.Set("sockFlagsOffset", static_cast<double>(offsetof(struct ml_sock, flags)));
  layout.Set("histValueSize", static_cast<double>(sizeof(struct ml_hist)));
  exports.Set("compiled", layout);
  return exports;
}

}  // namespace

NODE_API_MODULE(meshlens, InitModule)
