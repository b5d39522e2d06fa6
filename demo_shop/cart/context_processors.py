def cart(request):
    from demo_shop.cart.cart import SessionCart

    return {"cart": SessionCart(request)}
