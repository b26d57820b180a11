#include "net/io_thread.hpp"

#include <pthread.h>

namespace agentpane::net {

std::shared_ptr<IoThread> IoThread::create(int threads, std::string name) {
  return std::make_shared<IoThread>(threads, std::move(name));
}

IoThread::IoThread(int threads, std::string name)
    : ctx_(threads), guard_(asio::make_work_guard(ctx_)) {
  if (threads < 1) threads = 1;
  if (name.size() > 15) name.resize(15);  // the kernel's limit
  threads_.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, name] {
      ::pthread_setname_np(::pthread_self(), name.c_str());
      ctx_.run();
    });
  }
}

IoThread::~IoThread() {
  guard_.reset();
  ctx_.stop();
  for (auto& t : threads_) {
    if (t.get_id() == std::this_thread::get_id()) {
      t.detach();
    } else if (t.joinable()) {
      t.join();
    }
  }
}

bool IoThread::inLoopThread() const {
  for (const auto& t : threads_) {
    if (t.get_id() == std::this_thread::get_id()) return true;
  }
  return false;
}

}  // namespace agentpane::net
