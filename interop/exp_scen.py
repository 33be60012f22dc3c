import driver
from driver import *

@scenario('exp_big_rtm', pairs=(('swift','rowsync'),('swift','swift')))
def exp(ctx, sk, rk):
    cont, part, hsh, (snd, r1, r2) = ctx.place('bigrtm', (sk, rk, rk if rk=='rowsync' else 'rowsync'))
    t = ctx.t0
    N = int(os.environ.get('EXP_N', '6000'))
    srows = [row('obj-%06d' % i, t + i * 0.01) for i in range(N)]
    rrows = srows[:int(N*0.4)] + [row('peer-%d' % i, t + 900 + i*0.01) for i in range(50)]
    st0=time.time()
    ctx.make_db(snd, part, hsh, cont, t, srows)
    ctx.make_db(r1, part, hsh, cont, t, rrows)
    ctx.log('made dbs in %.1fs' % (time.time()-st0))
    st = ctx.replicate(snd, part, {'per_diff': '1000'})
    print(st)
    ctx.expect_rows(r1, part, hsh, merged(srows, rrows))

if __name__ == '__main__':
    sys.argv = ['driver.py'] + sys.argv[1:]
    sys.exit(driver.main())
