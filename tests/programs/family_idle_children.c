/* A parent that holds 3 MiB while three children run one after another (each allocates 100
 * blocks of 10,000 x (i + 1) bytes, frees half, and exits 10 + i), then frees its block and
 * allocates 777 bytes. The combined peak is the parent's 3 MiB with the last child's: the
 * first two hold nothing then, but their allocations are the run's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
__attribute__((noinline)) void *parent_alloc(size_t n){ void*p=malloc(n); memset(p,1,n); return p; }
__attribute__((noinline)) void *child_alloc(size_t n){ void*p=malloc(n); memset(p,1,n); return p; }
int main(){
  void *p=parent_alloc(3<<20);
  for(int i=0;i<3;i++){
    pid_t c=fork();
    if(c==0){ void *q[100]; for(int j=0;j<100;j++) q[j]=child_alloc(10000*(i+1)); for(int j=0;j<50;j++) free(q[j]); exit(10+i); }
    int st; waitpid(c,&st,0); printf("child %d exit %d\n", i, WEXITSTATUS(st));
  }
  free(p); parent_alloc(777);
  return 0;
}
